"""``swift rlhf`` end to end on a tiny model and a small preference set, as a user runs it.

Each algorithm trains a few steps with a held-out split evaluated before and after: the chosen-minus-rejected margin
must rise and the held-out pairs must be ordered better than before (or than chance, for the reward model).
"""
import json
import os
import re

import pytest

from swift.llm import export_main, infer_main, rlhf_main
from swift.utils import SwiftError
from tests.conftest import folder_hashes, run_swift

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data')
PAIRS, KTO = os.path.join(DATA, 'pairs.jsonl'), os.path.join(DATA, 'kto.jsonl')
# 30 training and 10 held-out pairs (the topics of the held-out pairs are never seen in training).
TRAIN_FLAGS = ['--split_dataset_ratio', '0.25', '--max_steps', '8', '--learning_rate', '5e-4',
               '--per_device_train_batch_size', '4', '--logging_steps', '2', '--eval_steps', '8', '--save_steps', '8',
               '--eval_on_start', 'true', '--report_to', 'none', '--dataloader_num_workers', '0']
# The held-out score each algorithm logs: (margin key, ordering key).
SCORES = {'dpo': ('eval_rewards/margins', 'eval_rewards/accuracies'),
          'cpo': ('eval_rewards/margins', 'eval_rewards/accuracies'),
          'simpo': ('eval_rewards/margins', 'eval_rewards/accuracies'),
          'orpo': ('eval_rewards/margins', 'eval_rewards/accuracies'),
          'rm': ('eval_margin', 'eval_accuracy')}


def _train(model_dir: str, output_dir, rlhf_type: str, *extra: str) -> dict:
    dataset = KTO if rlhf_type == 'kto' else PAIRS
    return rlhf_main(['--rlhf_type', rlhf_type, '--model', model_dir, '--dataset', dataset, '--output_dir',
                      str(output_dir), *TRAIN_FLAGS, *extra])


def _evals(result: dict) -> list[dict]:
    return [record for record in result['log_history'] if 'eval_loss' in record]


@pytest.mark.parametrize('rlhf_type', ['dpo', 'cpo', 'simpo', 'orpo', 'rm'])
def test_training_raises_the_held_out_margin(qwen2_dir, tmp_path, rlhf_type):
    result = _train(qwen2_dir, tmp_path, rlhf_type)
    margin, ordering = SCORES[rlhf_type]
    before, after = _evals(result)[0], _evals(result)[-1]
    assert after[margin] > before[margin]
    assert after[ordering] >= 0.8 and after[ordering] >= before[ordering]
    run_dir = result['run_dir']
    logged = [json.loads(line) for line in open(os.path.join(run_dir, 'logging.jsonl'))]
    train_keys = {key for record in logged for key in record}
    if rlhf_type != 'rm':
        assert {'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen',
                'logps/rejected'} <= train_keys
    images = os.listdir(os.path.join(run_dir, 'images'))
    assert 'train_loss.png' in images and any('margin' in name for name in images)
    assert os.path.isfile(os.path.join(result['last_model_checkpoint'], 'adapter_model.safetensors'))
    if rlhf_type == 'rm':  # swift infer scores with the checkpoint: the held-out split, chosen against rejected
        checkpoint = result['last_model_checkpoint']
        scored = infer_main(['--adapters', checkpoint, '--load_data_args', 'true'])
        assert len(scored) == 10 and sum(row['score'] > row['rejected_score'] for row in scored) >= 8
        # merged, it is a plain sequence-classification folder that scores the same
        export_main(['--adapters', checkpoint, '--merge_lora', 'true'])
        merged = infer_main(['--model', checkpoint + '-merged', '--val_dataset', PAIRS, '--dataset_shuffle', 'false'])
        by_prompt = {json.dumps(row['messages']): row['score'] for row in merged}
        for row in scored:
            assert by_prompt[json.dumps(row['messages'])] == pytest.approx(row['score'], abs=1e-4)


def test_kto_separates_desirable_from_undesirable_answers(qwen2_dir, tmp_path):
    result = _train(qwen2_dir, tmp_path, 'kto', '--desirable_weight', '1.0', '--undesirable_weight', '1.0')
    before, after = _evals(result)[0], _evals(result)[-1]
    # The policy starts as the reference, so both implicit rewards start at 0.
    assert before['eval_rewards/chosen'] == pytest.approx(0, abs=1e-5)
    assert after['eval_rewards/chosen'] - after['eval_rewards/rejected'] > 0.05


def test_full_training_uses_a_frozen_copy_as_reference(qwen2_dir, tmp_path):
    result = _train(qwen2_dir, tmp_path, 'dpo', '--train_type', 'full', '--learning_rate', '1e-4', '--max_steps', '4',
                    '--eval_steps', '4', '--save_steps', '4')
    before, after = _evals(result)[0], _evals(result)[-1]
    assert before['eval_rewards/margins'] == pytest.approx(0, abs=1e-5)  # policy == reference at the start
    assert after['eval_rewards/margins'] > 0
    assert os.path.isfile(os.path.join(result['last_model_checkpoint'], 'model.safetensors'))


def test_dpo_checkpoint_infers_and_merges_like_sft(qwen2_dir, tmp_path):
    """The seeds' follow-up commands on a DPO checkpoint: swift infer --adapters and swift export --merge_lora."""
    result = _train(qwen2_dir, tmp_path / 'train', 'dpo', '--max_steps', '2', '--eval_steps', '2', '--save_steps', '2',
                    '--rpo_alpha', '0.5', '--loss_type', 'sigmoid')
    checkpoint = result['last_model_checkpoint']
    infer = run_swift('infer', '--adapters', checkpoint, '--max_new_tokens', '8', '--temperature', '0',
                      input='What do you think about tea?\nexit\n')
    assert infer.returncode == 0, infer.stderr[-2000:]
    merged = run_swift('export', '--adapters', checkpoint, '--merge_lora', 'true')
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert os.path.isfile(os.path.join(checkpoint + '-merged', 'model.safetensors'))


def test_qlora_dpo_trains_on_a_4bit_base(qwen2_dir, tmp_path):
    result = _train(qwen2_dir, tmp_path, 'dpo', '--train_type', 'qlora', '--max_steps', '4', '--eval_steps', '4',
                    '--save_steps', '4')
    before, after = _evals(result)[0], _evals(result)[-1]
    assert after['eval_rewards/margins'] > before['eval_rewards/margins']


def _write_rows(path, *rows: dict) -> str:
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    return str(path)


GOOD_PAIR = {'prompt': 'hello', 'chosen': 'hi there', 'rejected': 'go away'}


def test_a_row_without_a_rejected_answer_is_a_one_line_error(qwen2_dir, tmp_path):
    path = _write_rows(tmp_path / 'pairs.jsonl', GOOD_PAIR, {'messages': [{'role': 'user', 'content': 'hi'},
                                                                          {'role': 'assistant', 'content': 'yo'}]})
    proc = run_swift('rlhf', '--rlhf_type', 'dpo', '--model', qwen2_dir, '--dataset', path,
                     '--output_dir', str(tmp_path / 'out'))
    assert proc.returncode == 2
    assert 'pairs.jsonl:2: no rejected answer' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('rlhf_type, row, message', [
    ('dpo', {'prompt': 'hi', 'chosen': 'yo'}, 'rows.jsonl:2: no rejected answer'),
    ('kto', {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'yo'}],
             'label': 'maybe'}, "rows.jsonl:2: KTO needs a boolean 'label'"),
    ('dpo', {'messages': [{'role': 'user', 'content': 'hi'}], 'rejected_response': 'no'},
     'rows.jsonl:2: the conversation must end in an assistant answer'),
])
def test_bad_rows_name_their_line(qwen2_dir, tmp_path, rlhf_type, row, message):
    first = {**GOOD_PAIR, 'label': True} if rlhf_type == 'kto' else GOOD_PAIR
    path = _write_rows(tmp_path / 'rows.jsonl', first, row)
    with pytest.raises(SwiftError, match=re.escape(message)):
        rlhf_main(['--rlhf_type', rlhf_type, '--model', qwen2_dir, '--dataset', path])


def test_resuming_a_dpo_run_repeats_its_losses(qwen2_dir, tmp_path):
    flags = ['--max_steps', '4', '--save_steps', '2', '--eval_on_start', 'false', '--logging_steps', '1',
             '--split_dataset_ratio', '0']
    whole = _train(qwen2_dir, tmp_path / 'whole', 'dpo', *flags)
    checkpoint = os.path.join(whole['run_dir'], 'checkpoint-2')
    before = folder_hashes(whole['run_dir'])
    resumed = _train(qwen2_dir, tmp_path / 'whole', 'dpo', *flags, '--resume_from_checkpoint', checkpoint)
    losses = lambda result: {r['step']: r['loss'] for r in result['log_history'] if 'loss' in r}  # noqa: E731
    # a new run folder beside the source run, which keeps every file as it was
    assert os.path.dirname(resumed['run_dir']) == os.path.dirname(whole['run_dir']) != resumed['run_dir']
    assert folder_hashes(whole['run_dir']) == before
    assert os.path.isdir(os.path.join(resumed['run_dir'], 'checkpoint-4'))
    for step in (3, 4):
        assert losses(resumed)[step] == pytest.approx(losses(whole)[step], rel=1e-4)
