"""Evaluation with EvalScope during training (--eval_use_evalscope): at each evaluation the model being trained is
served and scored on a local multiple-choice folder, the score is logged as ``test_general_mcq`` in logging.jsonl,
and it equals what ``swift eval`` gives on the saved checkpoint."""
import json
import os

import pytest

from swift.arguments import TrainArguments, parse_args
from swift.pipelines.eval import eval_main
from swift.pipelines.train import sft_main
from swift.utils import SwiftError
from tests.eval.test_eval import MCQ
from tests.eval.toy_model import ANSWER, PROMPTS, fixed_answer_model


@pytest.fixture(scope='module')
def mcq_flags(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp('mcq_train')
    (folder / 'example_val.csv').write_text(MCQ, encoding='utf-8')
    dataset_args = {'general_mcq': {'local_path': str(folder), 'subset_list': ['example']}}
    return ['--eval_dataset', 'general_mcq', '--eval_dataset_args', json.dumps(dataset_args),
            '--eval_generation_config', '{"max_tokens": 32}']


def _train_scored(qwen2_dir, tmp_path_factory, tmp_path, *flags: str) -> tuple[str, list[dict]]:
    """LoRA on the toy model's own answers, scored by EvalScope at every step: (last checkpoint, logging.jsonl)."""
    model = fixed_answer_model(qwen2_dir, tmp_path_factory)
    data = tmp_path / 'train.jsonl'
    rows = [{'messages': [{'role': 'user', 'content': p}, {'role': 'assistant', 'content': ANSWER}]} for p in PROMPTS]
    data.write_text(''.join(json.dumps(r) + '\n' for r in rows), encoding='utf-8')
    result = sft_main(['--model', model, '--dataset', str(data), '--output_dir', str(tmp_path / 'out'),
                       '--train_type', 'lora', '--eval_steps', '1', '--per_device_eval_batch_size', '4',
                       '--report_to', 'none', '--eval_use_evalscope', 'true', *flags])
    checkpoint = result['last_model_checkpoint']
    with open(os.path.join(os.path.dirname(checkpoint), 'logging.jsonl'), encoding='utf-8') as f:
        return checkpoint, [json.loads(line) for line in f]


def test_scores_are_logged_at_each_evaluation_and_match_swift_eval(qwen2_dir, tmp_path_factory, mcq_flags, tmp_path):
    checkpoint, logs = _train_scored(qwen2_dir, tmp_path_factory, tmp_path, '--max_steps', '2', '--save_steps', '2',
                                     '--logging_steps', '1', *mcq_flags)
    scores = {log['global_step']: log['test_general_mcq'] for log in logs if 'test_general_mcq' in log}
    assert list(scores) == [1, 2], logs  # one score per evaluation (--eval_steps 1), beside eval_loss
    assert [log['global_step'] for log in logs if 'loss' in log] == [1, 2]  # the training loss is logged too
    assert os.path.isdir(os.path.join(os.path.dirname(checkpoint), 'eval', 'native'))
    record = eval_main(['--adapters', checkpoint, '--eval_output_dir', str(tmp_path / 'eval'),
                        '--eval_num_proc', '4', *mcq_flags])
    accuracy = record['scores']['general_mcq']['Accuracy']['score']
    assert accuracy == 0.5  # the toy model answers A: right on two rows of four
    assert scores[2] == accuracy  # the checkpoint saved at step 2 scores as it did during training


def test_without_held_out_rows_only_the_scores_are_logged(qwen2_dir, tmp_path_factory, mcq_flags, tmp_path):
    """No --val_dataset and --split_dataset_ratio 0: the trainer has no loss to evaluate, the scores still come."""
    _, logs = _train_scored(qwen2_dir, tmp_path_factory, tmp_path, '--max_steps', '1', '--split_dataset_ratio', '0',
                            *mcq_flags)
    assert [log['test_general_mcq'] for log in logs if 'test_general_mcq' in log] == [0.5]  # one step, one score
    assert not any('eval_loss' in log for log in logs)


def test_bad_use_is_one_line():
    with pytest.raises(SwiftError, match='--eval_use_evalscope: give --eval_dataset'):
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--eval_use_evalscope', 'true'])
    from swift.pipelines.rlhf import rlhf_main
    with pytest.raises(SwiftError, match='--eval_use_evalscope: not built yet for swift rlhf'):
        rlhf_main(['--rlhf_type', 'dpo', '--model', 'm', '--dataset', 'd.jsonl', '--eval_use_evalscope', 'true',
                   '--eval_dataset', 'general_mcq'])


def test_without_evalscope_the_extra_is_named(monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'evalscope' else find_spec(name, *a))
    with pytest.raises(SwiftError, match=r"--eval_use_evalscope needs EvalScope: pip install 'swift\[eval\]'"):
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--eval_use_evalscope', 'true',
                                    '--eval_dataset', 'general_mcq'])
