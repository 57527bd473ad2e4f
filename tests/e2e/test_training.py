"""Training behaviour through the real command line: learning, pre-training, resume after kill -9 (torchrun:
test_distributed.py)."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import folder_hashes, run_swift


def _records(run_dir: str) -> list[dict]:
    return [json.loads(line) for line in open(os.path.join(run_dir, 'logging.jsonl'))]


def _losses(run_dir: str) -> dict[int, float]:
    return {r['global_step']: r['loss'] for r in _records(run_dir) if 'loss' in r}


def _only_run(output_dir) -> str:
    (run_dir,) = glob.glob(os.path.join(str(output_dir), 'v*-*'))
    return run_dir


def _write_rows(path, n: int) -> str:
    with open(path, 'w') as f:
        for i in range(n):
            f.write(json.dumps({'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                                             {'role': 'assistant', 'content': f'{i} plus {i} is {2 * i}.'}]}) + '\n')
    return str(path)


@pytest.mark.parametrize('family_fixture', ['qwen2_dir', 'llama_dir'])
def test_lora_sft_lowers_the_loss(family_fixture, request, tmp_path):
    model_dir = request.getfixturevalue(family_fixture)
    result = run_swift('sft', '--model', model_dir, '--dataset', 'swift/self-cognition#64', '--model_name', 'Robo',
                       '--model_author', 'Team', '--train_type', 'lora', '--lora_rank', '16', '--learning_rate', '5e-3',
                       '--num_train_epochs', '3', '--per_device_train_batch_size', '8', '--logging_steps', '4',
                       '--split_dataset_ratio', '0', '--save_steps', '1000', '--output_dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = list(_losses(_only_run(tmp_path)).values())
    assert losses[-1] < 0.93 * losses[0], losses


def test_pt_trains_on_every_token_of_plain_text(qwen2_dir, conformance_dir, tmp_path):
    result = run_swift('pt', '--model', qwen2_dir, '--dataset', os.path.join(conformance_dir, 'swift_pre.jsonl'),
                       os.path.join(conformance_dir, 'swift_pre.csv'), '--train_type', 'full', '--max_steps', '2',
                       '--split_dataset_ratio', '0', '--logging_steps', '1', '--output_dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _only_run(tmp_path)
    saved = json.load(open(os.path.join(run_dir, 'args.json')))
    assert saved['use_chat_template'] is False and saved['template'] == 'default'
    assert os.path.isfile(os.path.join(run_dir, 'checkpoint-2', 'model.safetensors'))


def _sft_argv(model_dir: str, data: str, out) -> list[str]:
    return ['sft', '--model', model_dir, '--dataset', data, '--output_dir', str(out), '--max_steps', '30',
            '--save_steps', '10', '--logging_steps', '1', '--split_dataset_ratio', '0', '--learning_rate', '1e-3',
            '--per_device_train_batch_size', '2', '--dataloader_num_workers', '0', '--seed', '7']


def test_resume_after_kill_9_gives_the_same_losses(qwen2_dir, tmp_path):
    data = _write_rows(tmp_path / 'rows.jsonl', 80)
    straight = run_swift(*_sft_argv(qwen2_dir, data, tmp_path / 'straight'))
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = _losses(_only_run(tmp_path / 'straight'))

    killed_out = tmp_path / 'killed'
    proc = subprocess.Popen([sys.executable, '-m', 'swift.cli.main', *_sft_argv(qwen2_dir, data, killed_out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not glob.glob(str(killed_out / 'v*' / 'checkpoint-10')) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = _only_run(killed_out)
    checkpoints = sorted(glob.glob(os.path.join(run_dir, 'checkpoint-*')), key=lambda p: int(p.rsplit('-', 1)[1]))
    assert checkpoints, 'the run was killed before its first checkpoint'
    for ckpt in checkpoints:  # a checkpoint that exists is complete
        assert os.path.isfile(os.path.join(ckpt, 'trainer_state.json')), ckpt
    before = folder_hashes(run_dir)
    resumed = run_swift(*_sft_argv(qwen2_dir, data, killed_out), '--resume_from_checkpoint', checkpoints[-1])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert folder_hashes(run_dir) == before  # the source run keeps every file as it was
    (resumed_dir,) = set(glob.glob(str(killed_out / 'v*-*'))) - {run_dir}
    saved = json.load(open(os.path.join(resumed_dir, 'args.json')))
    assert saved['resume_from_checkpoint'] == os.path.abspath(checkpoints[-1])
    got = _losses(resumed_dir)
    start = int(checkpoints[-1].rsplit('-', 1)[1]) + 1
    assert sorted(got) == list(range(start, 31))
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


@pytest.mark.parametrize('flags', [['--packing', 'true', '--max_length', '256'], ['--padding_free', 'true'],
                                   ['--lazy_tokenize', 'true'], ['--dataset_num_proc', '2']])
def test_data_pipeline_options_train(flags, qwen2_dir, tmp_path):
    data = _write_rows(tmp_path / 'rows.jsonl', 24)
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path / 'out'),
                       '--max_steps', '3', '--per_device_train_batch_size', '4', '--logging_steps', '1',
                       '--split_dataset_ratio', '0', *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = _losses(_only_run(tmp_path / 'out'))
    assert len(losses) == 3 and all(0 < v < 20 for v in losses.values())


def test_rows_longer_than_max_length_are_counted(qwen2_dir, tmp_path):
    data = tmp_path / 'rows.jsonl'
    rows = [{'query': 'short', 'response': 'ok'}] * 6 + [{'query': 'long ' * 300, 'response': 'ok'}] * 2
    data.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', str(data), '--output_dir', str(tmp_path / 'out'),
                       '--max_steps', '1', '--max_length', '64', '--split_dataset_ratio', '0')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'train: 6 rows encoded; dropped 2 longer than --max_length' in result.stderr
