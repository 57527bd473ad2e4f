"""``swift merge-lora``: ms-swift's command for ``swift export --merge_lora true``, flags from a config file too."""
import os

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from ..conftest import run_swift
from ..deploy.support import make_adapter

IDS = torch.tensor([[1, 5, 9, 20, 33, 7]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_merge_lora_writes_ckpt_merged_with_the_adapters_logits(qwen2_dir, tmp_path):
    ckpt = make_adapter(qwen2_dir, str(tmp_path / 'checkpoint-1'), seed=0)
    result = run_swift('merge-lora', '--model', qwen2_dir, '--adapters', ckpt)
    assert result.returncode == 0, result.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(f'{ckpt}-merged')
    expected = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), ckpt))
    assert not torch.allclose(expected, _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir)), atol=1e-3)
    torch.testing.assert_close(_logits(merged), expected, atol=1e-4, rtol=1e-4)


def test_merge_lora_from_a_config_file_with_a_command_line_override(qwen2_dir, tmp_path):
    ckpt = make_adapter(qwen2_dir, str(tmp_path / 'lora'), seed=1)
    config = tmp_path / 'merge.yaml'
    config.write_text(f'model: {qwen2_dir}\nadapters:\n  - {ckpt}\noutput_dir: {tmp_path / "from-file"}\n')
    result = run_swift('merge_lora', str(config), '--output_dir', str(tmp_path / 'from-cli'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / 'from-cli' / 'config.json')
    assert not os.path.exists(tmp_path / 'from-file') and not os.path.exists(f'{ckpt}-merged')
