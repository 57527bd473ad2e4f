"""QLoRA (bitsandbytes 4-bit on a CPU) and DoRA through the seeds' commands."""
import glob
import os

import torch
from safetensors.torch import load_file

from ..conftest import run_swift
from .test_training import _losses, _only_run, _write_rows


def _checkpoint(out) -> str:
    return os.path.join(_only_run(out), 'checkpoint-3')


def test_qlora_trains_infers_and_refuses_to_merge_into_4_bit(qwen2_dir, tmp_path):
    data = _write_rows(tmp_path / 'rows.jsonl', 16)
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', data, '--train_type', 'lora', '--quant_bits', '4',
                       '--max_steps', '3', '--logging_steps', '1', '--learning_rate', '1e-2',
                       '--split_dataset_ratio', '0', '--output_dir', str(tmp_path / 'out'))
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = _checkpoint(tmp_path / 'out')
    adapter = load_file(os.path.join(ckpt, 'adapter_model.safetensors'))
    assert adapter and all('lora_' in name for name in adapter)  # only the adapter is saved
    assert any('lora_B' in name and torch.count_nonzero(t) for name, t in adapter.items())  # and it trained
    assert len(_losses(_only_run(tmp_path / 'out'))) == 3

    answers = tmp_path / 'answers.jsonl'
    result = run_swift('infer', '--adapters', ckpt, '--max_new_tokens', '4', '--temperature', '0', '--val_dataset',
                       data + '#2', '--result_path', str(answers))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(answers.read_text().splitlines()) == 2

    refused = run_swift('export', '--adapters', ckpt, '--merge_lora', 'true')
    assert refused.returncode == 2 and 'QLoRA' in refused.stderr and 'Traceback' not in refused.stderr
    merged = run_swift('export', '--adapters', ckpt, '--merge_lora', 'true', '--quant_bits', '0')
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert 'unquantized base' in merged.stderr
    assert glob.glob(f'{ckpt}-merged/*.safetensors')


def test_dora_trains_and_merges(qwen2_dir, tmp_path):
    data = _write_rows(tmp_path / 'rows.jsonl', 16)
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', data, '--train_type', 'lora', '--use_dora', 'true',
                       '--max_steps', '3', '--split_dataset_ratio', '0', '--output_dir', str(tmp_path / 'out'))
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = _checkpoint(tmp_path / 'out')
    assert any('lora_magnitude_vector' in n for n in load_file(os.path.join(ckpt, 'adapter_model.safetensors')))
    merged = run_swift('export', '--adapters', ckpt, '--merge_lora', 'true')
    assert merged.returncode == 0, merged.stderr[-3000:]
