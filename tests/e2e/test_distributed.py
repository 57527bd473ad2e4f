"""Data parallelism gives one process's losses (issue 17): two processes under torchrun (gloo) for sft, dpo and
DeepSpeed ZeRO-2/3, and a simulated two-node run launched with ms-swift's variables (two launches on 127.0.0.1)."""
import glob
import json
import os
import subprocess
import sys

import pytest

from ..conftest import run_swift
from .distributed_runs import common_argv, run
from .test_training import _write_rows

WORKER = os.path.join(os.path.dirname(__file__), 'distributed_worker.py')


@pytest.fixture(scope='module')
def one_process(qwen2_dir, tmp_path_factory):
    """The per-step losses of sft and dpo in one process, 4 rows a step."""
    root = tmp_path_factory.mktemp('one_process')
    rows = _write_rows(root / 'rows.jsonl', 32)
    return rows, {name: run(name, qwen2_dir, rows, str(root / name), per_device=4) for name in ('sft', 'dpo')}


def _assert_same_losses(got: list[float], expected: list[float], what: str) -> None:
    assert len(got) == len(expected) == 3, (what, got, expected)
    assert got == pytest.approx(expected, rel=1e-4), what


def _run_dirs(output_dir) -> list[str]:
    return glob.glob(os.path.join(str(output_dir), 'v*-*'))


def test_two_processes_give_one_process_losses_for_sft_dpo_and_zero2_zero3(one_process, qwen2_dir, tmp_path):
    rows, expected = one_process
    names = ['sft', 'dpo', 'zero2', 'zero3']
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                             '--master_port=29617', WORKER, str(tmp_path), qwen2_dir, rows, *names],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in names:
        got = json.load(open(tmp_path / f'{name}.json'))
        _assert_same_losses(got, expected['dpo' if name == 'dpo' else 'sft'], name)
        (run_dir,) = _run_dirs(tmp_path / name)  # one run folder, written by rank 0
        assert os.path.isfile(os.path.join(run_dir, 'checkpoint-3', 'trainer_state.json')), name
    # ZeRO-3 gathers the sharded weights into one plain checkpoint that loads without DeepSpeed
    (zero3_dir,) = _run_dirs(tmp_path / 'zero3')
    assert os.path.getsize(os.path.join(zero3_dir, 'checkpoint-3', 'model.safetensors')) > 100_000


def test_two_nodes_launched_with_ms_swift_variables_train_as_one(one_process, qwen2_dir, tmp_path):
    """NNODES=2 NPROC_PER_NODE=1: each node's `swift sft` launches torchrun; global rank 0 alone writes."""
    rows, expected = one_process
    nodes = {'NNODES': '2', 'NPROC_PER_NODE': '1', 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': '29619'}
    argv = ['sft', '--dataset', rows, '--learning_rate', '1e-3']
    second = subprocess.Popen([sys.executable, '-m', 'swift.cli.main', *argv,
                               *common_argv(qwen2_dir, str(tmp_path / 'node1'), per_device=2)],
                              env={**os.environ, **nodes, 'NODE_RANK': '1'}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    first = run_swift(*argv, *common_argv(qwen2_dir, str(tmp_path / 'node0'), per_device=2),
                      env={**nodes, 'NODE_RANK': '0'})
    _, second_err = second.communicate(timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second_err[-3000:]
    assert not os.path.exists(tmp_path / 'node1')  # node 1 wrote nothing: no run folder, logs or checkpoints
    (run_dir,) = _run_dirs(tmp_path / 'node0')
    logged = [json.loads(line) for line in open(os.path.join(run_dir, 'logging.jsonl'))]
    _assert_same_losses([r['loss'] for r in logged if 'loss' in r], expected['sft'], 'two nodes')
    state = json.load(open(os.path.join(run_dir, 'checkpoint-3', 'trainer_state.json')))
    assert state['log_history'][0]['epoch'] == pytest.approx(4 / 32)  # 2 rows per node per step
