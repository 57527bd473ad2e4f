"""Bad input ends with one line naming the flag, file or field, exit status 2, and no traceback."""
import os

import pytest

from ..conftest import run_swift


def _assert_clean_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.mark.parametrize('argv, needles', [
    (['sft', '--model', 'M', '--dataset', 'd.jsonl', '--lora_rnak', '8'], ['--lora_rnak', '--lora_rank']),
    (['sft', '--model', 'M', '--dataset', 'd.jsonl', '--lora_rank', 'eight'], ['--lora_rank', "'eight'"]),
    (['sft', '--model', 'M', '--dataset', 'd.jsonl', '--train_type', 'lorra'], ['--train_type', "'lora'"]),
    (['sft', '--model', 'M', '--dataset', 'd.jsonl', '--columns', '{bad json'], ['--columns']),
    (['sft', '--model', 'M'], ['--dataset']),
    (['infer'], ['--model']),
    (['merge-lora', '--model', 'M'], ['--adapters']),
    (['merge-lora', '--adapters', '/nonexistent/ckpt'], ['--adapters /nonexistent/ckpt', 'no such folder']),
    (['frobnicate'], ["'frobnicate'", 'sft']),
])
def test_bad_flags(argv, needles):
    _assert_clean_error(run_swift(*argv), *needles)


def test_missing_dataset_file(qwen2_dir, tmp_path):
    _assert_clean_error(run_swift('sft', '--model', qwen2_dir, '--dataset', str(tmp_path / 'nope.jsonl'),
                                  '--output_dir', str(tmp_path)), 'nope.jsonl', 'not found')
    assert not os.listdir(tmp_path)  # no empty run folder is left behind


def test_malformed_row_names_file_and_line(qwen2_dir, tmp_path):
    data = tmp_path / 'data.jsonl'
    data.write_text('{"query": "q", "response": "r"}\n{"query": "q", "response": "r"\n')
    _assert_clean_error(run_swift('sft', '--model', qwen2_dir, '--dataset', str(data), '--output_dir',
                                  str(tmp_path / 'out')), f'{data}:2', 'invalid JSON')


def test_hub_model_offline(tmp_path):
    result = run_swift('sft', '--model', 'Qwen/Qwen2.5-7B-Instruct', '--dataset', 'swift/self-cognition',
                       '--output_dir', str(tmp_path), env={'HF_HUB_OFFLINE': '1'})
    _assert_clean_error(result, 'Qwen/Qwen2.5-7B-Instruct')


def test_not_a_model_folder(tmp_path):
    _assert_clean_error(run_swift('infer', '--model', str(tmp_path)), 'config.json')


def test_help_lists_the_seed_flags():
    result = run_swift('sft', '--help')
    assert result.returncode == 0
    for flag in ('--train_type', '--lora_rank', '--target_modules', '--torch_dtype', '--model_author', '--use_hf',
                 '--check_model', '--val_dataset', '--attn_impl', '--warmup_ratio', '--save_total_limit'):
        assert flag in result.stdout, flag


def test_hub_dataset_offline(qwen2_dir, tmp_path):
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', 'AI-ModelScope/alpaca-gpt4-data-en#500',
                       '--output_dir', str(tmp_path), env={'HF_HUB_OFFLINE': '1'})
    _assert_clean_error(result, 'AI-ModelScope/alpaca-gpt4-data-en')
