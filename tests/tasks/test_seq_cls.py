"""Sequence classification (issue 15): ``swift sft --task_type seq_cls`` on a decoder (LoRA, last-token head) and
on a BERT-style encoder, single-label, multi-label and regression; ``swift infer`` predictions with accuracy;
``swift deploy`` answering the real ``openai`` client; bad labels stopping with file:line.

The toy task is learnable and checked on held-out rows: label 1 when the word 'robot' appears in the sentence.
"""
import json
import logging
import random

import pytest

from swift.utils import SwiftError
from swift.utils.tiny_models import _WORDS

from ..conftest import run_swift
from ..deploy.support import serving

KEYWORDS = ('robot', 'hello', 'swift')
WORDS = [w for w in _WORDS if w not in KEYWORDS]


def _sentence(rng: random.Random, keywords: tuple[str, ...] = ()) -> str:
    words = [rng.choice(WORDS) for _ in range(6)]
    for keyword in keywords:
        words[rng.randrange(len(words))] = keyword
    return ' '.join(words)


def _row(text: str, label) -> dict:
    return {'messages': [{'role': 'user', 'content': text}], 'label': label}


def _write(path, rows: list[dict]) -> str:
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    return str(path)


def keyword_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [_row(_sentence(rng, ('robot',) * (i % 2)), i % 2) for i in range(n)]


@pytest.fixture(scope='module')
def keyword_data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('keyword')
    return {'train': _write(root / 'train.jsonl', keyword_rows(160, 0)),
            'val': _write(root / 'val.jsonl', keyword_rows(40, 1))}


def _sft(model: str, dataset: str, out: str, *flags: str) -> dict:
    from swift.llm import sft_main
    return sft_main(['--model', model, '--dataset', dataset, '--task_type', 'seq_cls', '--output_dir', out,
                     '--split_dataset_ratio', '0', '--per_device_train_batch_size', '8', '--logging_steps', '1',
                     '--save_strategy', 'no', '--report_to', 'none', *flags])


def _infer_accuracy(argv: list[str]) -> tuple[float, list[dict]]:
    """``swift infer`` over a labelled dataset: the accuracy it logs, and its result rows."""
    from swift.pipelines.infer import infer_main
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger('swift')  # it does not propagate to the root logger, which caplog reads
    logger.addHandler(handler)
    try:
        results = infer_main(argv)
    finally:
        logger.removeHandler(handler)
    logged = [line for line in lines if line.startswith('acc: ')]
    assert len(logged) == 1, lines
    return float(logged[0].split()[1]), results


# ---- decoder, LoRA: held-out accuracy rises -------------------------------------------------------------------------
@pytest.fixture(scope='module')
def keyword_lora(qwen2_dir, keyword_data, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp('keyword_lora'))
    result = _sft(qwen2_dir, keyword_data['train'], out, '--num_labels', '2', '--train_type', 'lora',
                  '--num_train_epochs', '2', '--learning_rate', '5e-3', '--use_chat_template', 'false')
    return result['last_model_checkpoint']


def test_lora_classifier_learns_the_keyword_task(qwen2_dir, keyword_data, keyword_lora):
    from transformers import set_seed
    with open(f'{keyword_lora}/args.json') as f:
        saved = json.load(f)
    assert (saved['task_type'], saved['num_labels'], saved['problem_type']) == ('seq_cls', 2,
                                                                                'single_label_classification')
    with open(f'{keyword_lora}/adapter_config.json') as f:
        assert 'score' in json.load(f)['modules_to_save']  # the head trains and is saved beside the LoRA weights
    set_seed(42)  # the head sft started from (it seeds before loading the model)
    before, _ = _infer_accuracy(['--model', qwen2_dir, '--task_type', 'seq_cls', '--num_labels', '2',
                                 '--use_chat_template', 'false', '--val_dataset', keyword_data['val']])
    after, results = _infer_accuracy(['--adapters', keyword_lora, '--val_dataset', keyword_data['val']])
    assert after >= 0.85 and after >= before + 0.25, (before, after)
    assert after == sum(r['response'] == r['labels'] for r in results) / len(results)
    assert all(r['response'] in (0, 1) and r['labels'] in (0, 1) for r in results)
    top = results[0]['logprobs']['content'][0]['top_logprobs']  # ms-swift's shape: every class's log-probability
    assert sorted(entry['index'] for entry in top) == [0, 1]


def test_deploy_answers_the_openai_client_with_the_class(keyword_lora):
    from openai import OpenAI

    from swift.arguments import InferArguments
    from swift.infer.server import create_app
    from swift.pipelines.common import apply_checkpoint_args, to_arguments
    from swift.pipelines.infer import build_engine
    from swift.protocol import InferRequest
    engine = build_engine(apply_checkpoint_args(to_arguments(InferArguments, ['--adapters', keyword_lora])))
    with serving(create_app(engine, 'clf', [])) as url:
        client = OpenAI(api_key='EMPTY', base_url=f'{url}/v1')
        for text in ('hello robot how are you', 'hello world how are you'):
            messages = [{'role': 'user', 'content': text}]
            resp = client.chat.completions.create(model='clf', messages=messages)
            expected, _ = engine.classify(InferRequest(messages=messages))
            # as ms-swift answers a seq_cls model's chat request: the predicted class is the content
            assert json.loads(resp.choices[0].message.content) == expected
            assert resp.choices[0].logprobs.content[0].index == expected  # the openai model keeps ms-swift's field
        assert expected == 0 and json.loads(client.chat.completions.create(
            model='clf', messages=[{'role': 'user', 'content': 'robot robot'}]).choices[0].message.content) == 1


# ---- multi-label and regression: the loss falls ---------------------------------------------------------------------
def multi_label_rows(n: int) -> list[dict]:
    """Labels 0, 1, 2: whether 'robot', 'hello', 'swift' appear."""
    rng, rows = random.Random(2), []
    for i in range(n):
        present = tuple(k for j, k in enumerate(KEYWORDS) if (i >> j) & 1)
        rows.append(_row(_sentence(rng, present), [j for j, k in enumerate(KEYWORDS)
                                                   if k in present]))
    return rows


def regression_rows(n: int) -> list[dict]:
    """0, 1/6, 2/6 or 3/6: how many times 'robot' was written into the six words (two may land on one place)."""
    rng = random.Random(3)
    return [_row(_sentence(rng, ('robot',) * (i % 4)), len(set(range(i % 4))) / 6) for i in range(n)]


@pytest.mark.parametrize('problem_type, num_labels, rows', [
    ('multi_label_classification', '3', multi_label_rows),
    ('regression', '1', regression_rows),
])
def test_multi_label_and_regression_losses_fall(qwen2_dir, tmp_path, problem_type, num_labels, rows):
    dataset = _write(tmp_path / 'data.jsonl', rows(64))
    result = _sft(qwen2_dir, dataset, str(tmp_path / 'out'), '--num_labels', num_labels, '--problem_type',
                  problem_type, '--train_type', 'full', '--num_train_epochs', '2', '--learning_rate', '3e-3',
                  '--use_chat_template', 'false')
    losses = [log['loss'] for log in result['log_history'] if 'loss' in log]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses


# ---- an encoder: BERT, as ms-swift's demo_bert ---------------------------------------------------------------------
@pytest.fixture(scope='module')
def bert_dir(tmp_path_factory) -> str:
    from swift.utils.tiny_bert import build_tiny_bert
    return build_tiny_bert(str(tmp_path_factory.mktemp('bert')))


def test_bert_classifier_learns_the_keyword_task(bert_dir, keyword_data, tmp_path):
    from transformers import set_seed
    result = _sft(bert_dir, keyword_data['train'], str(tmp_path / 'out'), '--num_labels', '2', '--train_type',
                  'full', '--num_train_epochs', '2', '--learning_rate', '3e-3', '--lr_scheduler_type', 'constant',
                  '--save_strategy', 'epoch', '--save_only_model', 'true')
    set_seed(42)
    before, _ = _infer_accuracy(['--model', bert_dir, '--task_type', 'seq_cls', '--num_labels', '2',
                                 '--val_dataset', keyword_data['val']])
    after, results = _infer_accuracy(['--model', result['last_model_checkpoint'], '--val_dataset',
                                      keyword_data['val']])
    assert after >= 0.85 and after >= before + 0.25, (before, after)


def test_ms_swift_bert_example_runs(bert_dir, keyword_data, tmp_path):
    """ms-swift's examples/train/seq_cls/bert/sft.sh with the model, dataset and step counts swapped."""
    out = tmp_path / 'output'
    proc = run_swift(
        'sft', '--model', bert_dir, '--tuner_type', 'lora', '--dataset', f"{keyword_data['train']}#64",
        '--load_from_cache_file', 'true', '--split_dataset_ratio', '0.01', '--torch_dtype', 'bfloat16',
        '--num_train_epochs', '1', '--per_device_train_batch_size', '1', '--per_device_eval_batch_size', '1',
        '--learning_rate', '1e-4', '--lora_rank', '8', '--lora_alpha', '32', '--target_modules', 'all-linear',
        '--gradient_accumulation_steps', '16', '--eval_steps', '2', '--save_steps', '2', '--save_total_limit', '2',
        '--logging_steps', '1', '--max_length', '512', '--truncation_strategy', 'right', '--output_dir', str(out),
        '--warmup_ratio', '0.05', '--dataloader_num_workers', '0', '--num_labels', '2', '--task_type', 'seq_cls')
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next(out.iterdir())
    logs = [json.loads(line) for line in (run / 'logging.jsonl').read_text().splitlines()]
    assert any('eval_acc' in log for log in logs) and sum('loss' in log for log in logs) == 4
    checkpoint = sorted(run.glob('checkpoint-*'))[-1]
    saved = json.loads((checkpoint / 'args.json').read_text())
    assert (saved['template'], saved['problem_type']) == ('bert', 'single_label_classification')


# ---- bad labels -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('problem_type, bad, reason', [
    ('single_label_classification', {'messages': [{'role': 'user', 'content': 'hi'}]}, "field 'label' is missing"),
    ('single_label_classification', _row('hi', 2), 'label 2 is out of range: --num_labels 2 allows 0..1'),
    ('single_label_classification', _row('hi', 'yes'), "label 'yes' is not a class index"),
    ('multi_label_classification', _row('hi', 1), 'label 1 must be a list of class indices'),
    ('regression', _row('hi', 'high'), "label 'high' is not a number"),
])
def test_bad_label_rows_stop_with_file_and_line(qwen2_dir, tmp_path, problem_type, bad, reason):
    good = _row('hello', [1] if problem_type == 'multi_label_classification' else 1)
    dataset = _write(tmp_path / 'bad.jsonl', [good, bad])
    num_labels = '1' if problem_type == 'regression' else '2'
    with pytest.raises(SwiftError, match=f'bad.jsonl:2: {reason}'):
        _sft(qwen2_dir, dataset, str(tmp_path / 'out'), '--num_labels', num_labels, '--problem_type', problem_type)


def test_bad_label_exits_2_in_one_line(qwen2_dir, tmp_path):
    dataset = _write(tmp_path / 'bad.jsonl', [_row('hello', 5)])
    proc = run_swift('sft', '--model', qwen2_dir, '--dataset', dataset, '--task_type', 'seq_cls', '--num_labels', '2',
                     '--output_dir', str(tmp_path / 'out'))
    assert proc.returncode == 2
    assert 'bad.jsonl:1: label 5 is out of range' in proc.stderr and 'Traceback' not in proc.stderr


def test_seq_cls_needs_num_labels(qwen2_dir, tmp_path):
    with pytest.raises(SwiftError, match='--task_type seq_cls needs --num_labels'):
        _sft(qwen2_dir, _write(tmp_path / 'd.jsonl', [_row('hi', 0)]), str(tmp_path / 'out'))


def test_merged_classifier_predicts_as_the_adapter(keyword_lora, keyword_data):
    """``swift export --merge_lora true``: the merged folder reads the rows as the adapter did (plain text here)."""
    from swift.pipelines.export import export_main
    export_main(['--adapters', keyword_lora, '--merge_lora', 'true'])
    merged, _ = _infer_accuracy(['--model', f'{keyword_lora}-merged', '--val_dataset', keyword_data['val']])
    adapter, _ = _infer_accuracy(['--adapters', keyword_lora, '--val_dataset', keyword_data['val']])
    assert merged == adapter >= 0.85
