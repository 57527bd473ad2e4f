"""A kill -9 under torchrun (NPROC_PER_NODE=2, gloo): of one rank or of the launcher. Every process of the run
ends, every checkpoint left is complete, and the run resumes from the last one into a new run folder."""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import folder_hashes, run_swift
from .test_training import _losses, _only_run, _write_rows

# Files every rank's save must have finished before the checkpoint counts as complete.
COMPLETE = ('trainer_state.json', 'adapter_model.safetensors', 'args.json', 'rng_state_0.pth', 'rng_state_1.pth')


def _argv(model_dir: str, data: str, out) -> list[str]:
    return ['sft', '--model', model_dir, '--dataset', data, '--output_dir', str(out), '--max_steps', '12',
            '--save_steps', '1', '--logging_steps', '1', '--split_dataset_ratio', '0', '--seed', '7',
            '--dataloader_num_workers', '0']


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    parents = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    parents[int(entry)] = int(f.read().rsplit(')', 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _local_rank(pid: int) -> int | None:
    try:
        with open(f'/proc/{pid}/environ', 'rb') as f:
            env = dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)
    except OSError:
        return None
    rank = env.get(b'LOCAL_RANK')
    return int(rank) if rank is not None else None


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _train_then_kill(model_dir: str, data: str, out, port: str, victim) -> str:
    """Start a two-process run, wait for its third checkpoint, kill -9 the process ``victim`` picks from
    (launcher pid, worker pids), and check that the whole run ends. Returns the run folder."""
    env = {**os.environ, 'NPROC_PER_NODE': '2', 'MASTER_PORT': port}
    launcher = subprocess.Popen([sys.executable, '-m', 'swift.cli.main', *_argv(model_dir, data, out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not glob.glob(str(out / 'v*' / 'checkpoint-3')) and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    processes = _children(launcher.pid)
    workers = [pid for pid in processes if _local_rank(pid) is not None]
    assert len(workers) == 2 and launcher.poll() is None, 'the run ended before its third checkpoint'
    os.kill(victim(launcher.pid, workers), signal.SIGKILL)
    launcher.wait(timeout=120)
    deadline = time.time() + 60
    while any(_alive(pid) for pid in processes) and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in processes if _alive(pid)], 'a process of the run outlived the kill'
    return _only_run(out)


def _assert_complete_and_resumable(model_dir: str, data: str, out, run_dir: str, port: str) -> None:
    checkpoints = sorted(glob.glob(os.path.join(run_dir, 'checkpoint-*')), key=lambda p: int(p.rsplit('-', 1)[1]))
    assert checkpoints
    for checkpoint in checkpoints:
        missing = [name for name in COMPLETE if not os.path.isfile(os.path.join(checkpoint, name))]
        assert not missing, (checkpoint, missing)
    before = folder_hashes(run_dir)
    resumed = run_swift(*_argv(model_dir, data, out), '--resume_from_checkpoint', checkpoints[-1],
                        env={'NPROC_PER_NODE': '2', 'MASTER_PORT': port})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert folder_hashes(run_dir) == before
    (resumed_dir,) = set(glob.glob(str(out / 'v*-*'))) - {run_dir}
    start = int(checkpoints[-1].rsplit('-', 1)[1]) + 1
    assert sorted(_losses(resumed_dir)) == list(range(start, 13))


@pytest.mark.parametrize('victim', ['rank 1', 'launcher'])
def test_a_kill_9_under_torchrun_ends_the_run_and_it_resumes(victim, qwen2_dir, tmp_path):
    data = _write_rows(tmp_path / 'rows.jsonl', 48)
    port = '29621' if victim == 'rank 1' else '29623'
    pick = {'rank 1': lambda launcher, workers: next(pid for pid in workers if _local_rank(pid) == 1),
            'launcher': lambda launcher, workers: launcher}[victim]
    run_dir = _train_then_kill(qwen2_dir, data, tmp_path / 'out', port, pick)
    _assert_complete_and_resumable(qwen2_dir, data, tmp_path / 'out', run_dir, port)
