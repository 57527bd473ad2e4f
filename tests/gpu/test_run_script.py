"""tests/gpu/run.sh dry-runs on a machine without a GPU, and its table covers every GPU path of issue 17 and every
test of the suite that skips without a GPU (so a new GPU-only test must join tests/gpu/checks.py's GPU_TESTS)."""
import os
import re
import subprocess
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# A test is GPU-only when a skipif decorator (or a module's pytestmark) skips it unless something holds, for want
# of a GPU/CUDA/accelerator, as its reason says.
GPU_SKIP = re.compile(r'skipif\(\s*not\b[^\n]*reason=[\'"][^\'"]*(GPU|CUDA|accelerator)', re.IGNORECASE)
DEF = re.compile(r'^(?:async )?def (test_\w+)', re.MULTILINE)
EXPECTED_CHECKS = ('sft_bf16', 'qlora_memory', 'grpo_vllm_colocate', 'ddp_nccl', 'deepspeed_zero2', 'deepspeed_zero3',
                   'fsdp2', 'sglang', 'lmdeploy')


def gpu_only_test_ids() -> list[str]:
    ids = []
    for path in sorted(TESTS.rglob('test_*.py')):
        if path.parent.name == 'gpu':
            continue
        text, name = path.read_text(encoding='utf-8'), path.relative_to(TESTS.parent).as_posix()
        whole_module = re.search(r'^pytestmark\s*=.*' + GPU_SKIP.pattern, text, re.MULTILINE | re.IGNORECASE)
        for match in DEF.finditer(text):
            decorators = text[:match.start()].rsplit('\n\n', 1)[-1]  # the lines right above the def
            if whole_module or GPU_SKIP.search(decorators):
                ids.append(f'{name}::{match.group(1)}')
    return ids


def test_dry_run_lists_every_check_and_every_gpu_only_test():
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}  # a dry run even where a GPU is
    proc = subprocess.run(['bash', str(TESTS / 'gpu' / 'run.sh')], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith('| ') and 'result' not in line]
    assert rows and all('| skipped: no GPU |' in row for row in rows), proc.stdout
    table = proc.stdout
    for check in EXPECTED_CHECKS:
        assert any(check in row.split('|')[1] for row in rows), f'no {check} row:\n{table}'
    gpu_only = gpu_only_test_ids()
    assert 'tests/rlhf/test_offload.py::test_on_a_gpu_weights_and_optimizer_state_leave_and_come_back' in gpu_only
    missing = [test for test in gpu_only if test not in table]
    assert not missing, f'GPU-only tests missing from tests/gpu/checks.py GPU_TESTS: {missing}'
