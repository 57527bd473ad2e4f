"""Issue 17: the ``megatron`` command exists and, where it cannot run, stops in one line naming why (exit 2)."""
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

from swift.cli.megatron import COMMANDS, main, refusal


def test_megatron_sft_without_cuda_refuses_in_one_line():
    result = subprocess.run([sys.executable, '-m', 'swift.cli.megatron', 'sft', '--model', 'Qwen/Qwen2.5-7B',
                             '--tensor_model_parallel_size', '2'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert '\n' not in line and 'Traceback' not in line and line.startswith('megatron sft: ')
    if not torch.cuda.is_available():
        assert 'needs CUDA GPUs' in line and 'torch.cuda.is_available() is False' in line


def test_every_case_names_its_reason(capsys):
    assert 'megatron-core is not installed' in refusal('rlhf', cuda=True, has_megatron_core=False)
    assert 'no Megatron trainer yet' in refusal('pt', cuda=True, has_megatron_core=True)
    assert 'use swift export' in refusal('export', cuda=False, has_megatron_core=False)
    assert main(['train']) == 2 and 'unknown command' in capsys.readouterr().err
    assert main(['--help']) == 0
    usage = capsys.readouterr().out
    assert all(command in usage for command in COMMANDS)


def test_the_console_command_is_declared():
    project = tomllib.loads((Path(__file__).parents[2] / 'pyproject.toml').read_text())['project']
    assert project['scripts']['megatron'] == 'swift.cli.megatron:cli_main'
