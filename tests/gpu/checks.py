"""The GPU check of issue 17, driven by tests/gpu/run.sh: one table of every path that needs a CUDA GPU.

    bash tests/gpu/run.sh            # on a machine with a GPU: runs each check (at most 8 minutes in all)
    bash tests/gpu/run.sh            # without one: a dry run, every row 'skipped: no GPU', exit 0

Each check runs in a child process (``checks.py --run NAME``) under its own time budget, so an out-of-memory or a
hung engine costs one row, not the table. A check whose package is missing here says which, in its row: the GPU
image may lack trl, vLLM, DeepSpeed, bitsandbytes, SGLang or LMDeploy; carry them as wheels (``.whl/``, which
run.sh installs first; see /work/.library/device/README.md). The pytest rows are every test of the suite that skips
without a GPU: tests/gpu/test_run_script.py fails when a new one is not listed in GPU_TESTS.
"""
import argparse
import glob
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOTAL_S = 440  # the checks' share of run.sh's 8 minutes; a check that would pass it is skipped as out of time
# Dense bf16 peak of the cards a session may be lent, for MFU (NVIDIA's datasheets, without sparsity).
PEAK_BF16_FLOPS = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'L40S': 362e12, 'A10': 125e12}


@dataclass
class Check:
    name: str
    what: str
    budget_s: int
    needs: tuple[str, ...] = ()  # python modules, besides swift's own requirements
    pytest_id: str | None = None  # a test of the suite that skips without a GPU; else run_<name> below
    min_gpus: int = 1


GPU_TESTS = [
    'tests/rlhf/test_offload.py::test_on_a_gpu_weights_and_optimizer_state_leave_and_come_back',
    'tests/infer/test_backends.py::test_sglang_greedy_answers_match_transformers',
    'tests/infer/test_backends.py::test_lmdeploy_greedy_answers_match_transformers',
    'tests/export/test_quantize_export.py::test_awq_export_on_a_gpu_loads_in_transformers',
]
_TEST_NEEDS = {'sglang': ('sglang',), 'lmdeploy': ('lmdeploy',), 'awq': ('llmcompressor',)}

CHECKS = [
    Check('sft_bf16_0.5b', 'bf16 full SFT of a 0.5B-shaped random Qwen2 (flash-attn when installed, else sdpa): '
          'tokens/s and MFU', 90),
    Check('qlora_memory', 'peak GPU memory of QLoRA (bnb NF4) against bf16 LoRA on the same 0.5B model', 60,
          ('bitsandbytes',)),
    Check('grpo_vllm_colocate', "seed 000's GRPO: vLLM colocated, --sleep_level 1, --offload_model/--offload_optimizer",
          110, ('vllm',)),
    Check('ddp_nccl', 'NPROC_PER_NODE=2 over NCCL gives the one-process losses (same global batch)', 60,
          min_gpus=2),
    Check('deepspeed_zero2', '--deepspeed zero2 gives the plain run\'s losses', 45, ('deepspeed',)),
    Check('deepspeed_zero3', '--deepspeed zero3 gives the plain run\'s losses', 45, ('deepspeed',)),
    Check('fsdp2', '--fsdp fsdp2 gives the plain run\'s losses', 45),
] + [Check(test.rsplit('::', 1)[1], f'pytest {test}', 60 if 'offload' not in test else 20,
           next((v for k, v in _TEST_NEEDS.items() if k in test), ()), pytest_id=test) for test in GPU_TESTS]


# ---- the table ----------------------------------------------------------------------------------------------------
def main() -> int:
    import torch
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = torch.cuda.get_device_name(0) if gpus else 'no GPU'
    print(f'# swift GPU check: {device} x{gpus}, torch {torch.__version__}, python {sys.version.split()[0]}')
    rows, deadline, failed = [], time.time() + TOTAL_S, False
    broken = _swift_import_error() if gpus else None
    for check in CHECKS:
        result, detail = (f'skipped: swift does not import here ({broken})', check.what) if broken else \
            _outcome(check, gpus, deadline)
        failed |= result.startswith('FAILED')
        rows.append((check.name, result, detail or check.what))
    width = max(len(name) for name, _, _ in rows)
    print(f"| {'check'.ljust(width)} | result | detail |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, result, detail in rows:
        print(f'| {name.ljust(width)} | {result} | {detail} |')
    return 1 if failed else 0


def _swift_import_error() -> str | None:
    """The last line of the error importing swift's training and alignment pipelines here (a requirement the GPU
    image lacks, e.g. datasets or trl: carry it as a wheel), or None."""
    proc = subprocess.run([sys.executable, '-c', 'import swift.pipelines.train, swift.pipelines.rlhf'], cwd=REPO,
                          capture_output=True, text=True, env=_child_env())
    return (proc.stderr.strip().splitlines() or ['?'])[-1][:200] if proc.returncode else None


def _outcome(check: Check, gpus: int, deadline: float) -> tuple[str, str]:
    if not gpus:
        return 'skipped: no GPU', ''
    if gpus < check.min_gpus:
        return f'skipped: {gpus} GPU, needs {check.min_gpus}', check.what
    missing = [m for m in check.needs if importlib.util.find_spec(m) is None]
    if missing:
        return f"skipped: {', '.join(missing)} not installed", check.what
    left = deadline - time.time()
    if left < check.budget_s / 2:
        return 'skipped: out of time (8 minutes in all)', check.what
    started = time.time()
    result, detail = _run_child(check, min(check.budget_s, left))
    return f'{result} ({time.time() - started:.0f}s)', detail


def _run_child(check: Check, timeout: float) -> tuple[str, str]:
    if check.pytest_id:
        argv = [sys.executable, '-m', 'pytest', check.pytest_id, '-q', '-p', 'no:cacheprovider', '-rs']
    else:
        argv = [sys.executable, os.path.abspath(__file__), '--run', check.name]
    # A session of its own, so a timeout also ends what the check started (vLLM's engine, torchrun's workers).
    proc = subprocess.Popen(argv, cwd=REPO, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return 'FAILED', f'timed out after {timeout:.0f}s'
    lines = output.strip().splitlines()
    if check.pytest_id:
        skipped = [line for line in lines if line.startswith('SKIPPED')]
        if proc.returncode == 0 and skipped:
            return 'skipped', skipped[0][:200]
        errors = [line for line in lines if line.startswith('E ')] or lines or ['?']
        return ('ok', 'passed') if proc.returncode == 0 else ('FAILED', errors[0][:300])
    result = next((json.loads(line[7:]) for line in reversed(lines) if line.startswith('RESULT ')), None)
    if proc.returncode != 0 or result is None:
        return 'FAILED', (lines or ['no output'])[-1][:300]
    return ('ok' if result['ok'] else 'FAILED'), result['detail']


def _child_env() -> dict:
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')])),
            'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}


# ---- the checks (each runs in its own process: python checks.py --run NAME) -----------------------------------------
def _report(ok: bool, detail: str) -> None:
    print('RESULT ' + json.dumps({'ok': bool(ok), 'detail': detail}))


def _workdir(name: str) -> str:
    path = os.path.join(os.environ.get('SWIFT_GPU_CHECK_DIR', '/tmp/swift_gpu_check'), name)
    os.makedirs(path, exist_ok=True)
    return path


def _half_billion_model() -> str:
    """A random model of Qwen2.5-0.5B's shape (896 wide, 24 layers, 14 heads, 2 KV heads, 151936 vocabulary), with
    the tiny test tokenizer; built once per machine."""
    out = _workdir('qwen2-0.5b')
    if os.path.isfile(os.path.join(out, 'config.json')) and glob.glob(os.path.join(out, '*.safetensors')):
        return out
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config
    from swift.utils.tiny_models import build_tiny_model
    build_tiny_model(out, 'qwen2')  # the tokenizer (and a tiny model, replaced below)
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                         tie_word_embeddings=True, torch_dtype='bfloat16')
    tokenizer_config = json.load(open(os.path.join(out, 'config.json')))
    for key in ('bos_token_id', 'eos_token_id', 'pad_token_id'):
        setattr(config, key, tokenizer_config.get(key))
    with torch.device('cuda'):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    for stale in glob.glob(os.path.join(out, '*.safetensors')):
        os.remove(stale)
    model.save_pretrained(out)
    return out


def _rows(n: int, words: int) -> str:
    path = os.path.join(_workdir('data'), f'rows_{n}_{words}.jsonl')
    with open(path, 'w') as f:
        for i in range(n):
            answer = ' '.join(f'token{(i * 7 + j) % 97}' for j in range(words))
            f.write(json.dumps({'messages': [{'role': 'user', 'content': f'count for me, {i}'},
                                             {'role': 'assistant', 'content': answer}]}) + '\n')
    return path


def _losses(result: dict) -> list[float]:
    return [record['loss'] for record in result['log_history'] if 'loss' in record]


def run_sft_bf16_0_5b() -> None:
    import torch
    from swift.pipelines.train import sft_main
    model = _half_billion_model()
    attn = 'flash_attn' if importlib.util.find_spec('flash_attn') else 'sdpa'
    result = sft_main(['--model', model, '--dataset', _rows(512, 300), '--train_type', 'full', '--torch_dtype',
                       'bfloat16', '--attn_impl', attn, '--max_steps', '30', '--per_device_train_batch_size', '8',
                       '--max_length', '1024', '--truncation_strategy', 'right', '--packing', 'true', '--logging_steps', '5', '--save_steps', '1000',
                       '--split_dataset_ratio', '0', '--gradient_checkpointing', 'false', '--learning_rate', '1e-4',
                       '--output_dir', _workdir('sft_bf16'), '--report_to', 'none'])
    speeds = [r['tokens_per_second'] for r in result['log_history'] if 'tokens_per_second' in r][1:]
    params = _parameter_count(model)
    name = torch.cuda.get_device_name(0)
    peak = next((flops for card, flops in PEAK_BF16_FLOPS.items() if card in name), None)
    tps = sum(speeds) / max(len(speeds), 1)
    mfu = f'{6 * params * tps / peak:.1%}' if peak else 'unknown card'
    losses = _losses(result)
    _report(bool(losses) and all(math.isfinite(x) for x in losses),
            f'attn={attn} params={params / 1e6:.0f}M tokens/s={tps:.0f} MFU(6N)={mfu} '
            f'peak_mem={torch.cuda.max_memory_allocated() / 2**30:.1f}GiB loss {losses[0]:.3f}->{losses[-1]:.3f}')


def _parameter_count(model_dir: str) -> int:
    from safetensors import safe_open
    count = 0
    for path in glob.glob(os.path.join(model_dir, '*.safetensors')):
        with safe_open(path, 'pt') as f:
            count += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return count


def run_qlora_memory() -> None:
    import torch
    from swift.pipelines.train import sft_main
    model, data, peaks = _half_billion_model(), _rows(64, 100), {}
    for train_type in ('lora', 'qlora'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        sft_main(['--model', model, '--dataset', data, '--train_type', train_type, '--torch_dtype', 'bfloat16',
                  '--max_steps', '3', '--per_device_train_batch_size', '4', '--max_length', '512',
                  '--split_dataset_ratio', '0', '--save_steps', '1000', '--output_dir', _workdir(train_type),
                  '--report_to', 'none'])
        peaks[train_type] = torch.cuda.max_memory_allocated() / 2**30
    _report(peaks['qlora'] < peaks['lora'], f"peak GPU memory: QLoRA {peaks['qlora']:.2f}GiB, bf16 LoRA "
                                            f"{peaks['lora']:.2f}GiB")


def run_grpo_vllm_colocate() -> None:
    sys.path.insert(0, REPO)
    from tests.rlhf.seed import seed_grpo_argv
    from swift.utils.tiny_models import build_tiny_model
    model = build_tiny_model(_workdir('tiny-qwen2'), 'qwen2', hidden_size=128)
    out = _workdir('grpo')
    proc = _swift(*seed_grpo_argv(model, out, max_completion_length=64), '--vllm_gpu_memory_utilization', '0.3')
    logged = [json.loads(line) for path in glob.glob(os.path.join(out, 'v*', 'logging.jsonl')) for line in open(path)]
    fell_back = 'generated with transformers' in proc.stderr
    ok = proc.returncode == 0 and not fell_back and any('rewards/accuracy/mean' in r for r in logged)
    _report(ok, f'rc={proc.returncode} vllm={"no (fell back)" if fell_back else "yes"} log records={len(logged)} '
                + (proc.stderr.strip().splitlines() or [''])[-1][:150] * (proc.returncode != 0))


def _swift(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'swift.cli.main', *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=_workdir('cwd'))


def _sft_losses(name: str, *extra: str, env: dict | None = None, batch: int = 4) -> list[float] | str:
    """Per-step losses of a small float32 full SFT through the command line (or its last error line)."""
    from swift.utils.tiny_models import build_tiny_model
    model = build_tiny_model(_workdir('tiny-qwen2'), 'qwen2', hidden_size=128)
    cached = os.path.join(_workdir('losses'), f'{name}.json')  # the plain run serves every comparison
    if os.path.isfile(cached):
        return json.load(open(cached))
    out = _workdir(f'sft_{name}')
    shutil.rmtree(out)
    proc = _swift('sft', '--model', model, '--dataset', _rows(64, 40), '--train_type', 'full', '--torch_dtype',
                  'float32', '--max_steps', '6', '--logging_steps', '1', '--per_device_train_batch_size', str(batch),
                  '--split_dataset_ratio', '0', '--save_steps', '1000', '--seed', '3', '--learning_rate', '1e-4',
                  '--dataloader_num_workers', '0', '--output_dir', out, '--report_to', 'none', *extra, env=env)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ['failed'])[-1][:250]
    records = [json.loads(line) for path in glob.glob(os.path.join(out, 'v*', 'logging.jsonl')) for line in open(path)]
    losses = [r['loss'] for r in records if 'loss' in r]
    json.dump(losses, open(cached, 'w'))
    return losses


def _compare(name: str, *extra: str, env: dict | None = None, batch: int = 4, rtol: float = 1e-3) -> None:
    plain, other = _sft_losses('plain'), _sft_losses(name, *extra, env=env, batch=batch)
    if isinstance(other, str) or isinstance(plain, str):
        _report(False, f'plain: {plain if isinstance(plain, str) else "ok"}; {name}: '
                       f'{other if isinstance(other, str) else "ok"}')
        return
    close = len(plain) == len(other) > 0 and all(abs(a - b) <= rtol * max(abs(a), 1e-6) for a, b in zip(plain, other))
    _report(close, f'losses {name} {[round(x, 4) for x in other]} vs one process {[round(x, 4) for x in plain]}')


SINGLE_RANK = {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': '29531'}


def run_ddp_nccl() -> None:
    _compare('ddp', env={'NPROC_PER_NODE': '2'}, batch=2)


def run_deepspeed_zero2() -> None:
    _compare('zero2', '--deepspeed', 'zero2', env=SINGLE_RANK)


def run_deepspeed_zero3() -> None:
    _compare('zero3', '--deepspeed', 'zero3', env=SINGLE_RANK)


def run_fsdp2() -> None:
    from swift.arguments.unsupported import UNSUPPORTED
    if 'fsdp' in UNSUPPORTED:
        _report(False, f'--fsdp is refused by this build: {UNSUPPORTED["fsdp"]}')
        return
    _compare('fsdp2', '--fsdp', 'fsdp2', env=SINGLE_RANK)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description='swift GPU checks (issue 17)')
    parser.add_argument('--run', help='run one check in this process')
    parser.add_argument('--list', action='store_true', help='print the checks and exit')
    options = parser.parse_args()
    if options.list:
        print('\n'.join(f'{c.name}\t{c.pytest_id or ""}' for c in CHECKS))
        sys.exit(0)
    if options.run:
        sys.path.insert(0, REPO)
        globals()['run_' + options.run.replace('.', '_')]()
        sys.exit(0)
    sys.exit(main())
