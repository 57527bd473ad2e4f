#!/usr/bin/env python3
"""``swift deploy`` serving throughput: batched against one-at-a-time, and against ms-swift's, on CPU, offline.

Builds (or reuses) the random-weight ~4.7M-parameter Qwen2 model of ``sft_throughput.py`` in
``<workdir>/model``, then for each setting starts ``swift deploy --model DIR --host 127.0.0.1 --port P
--max_batch_size B --temperature 0 --infer_backend pt``, waits until ``GET /v1/models`` answers, fires
``--requests`` chat completions (varied prompts, fixed ``max_tokens``) from ``--concurrency`` threads, and
stops the server. Settings:

* ours, ``--max_batch_size 1``  -- one request generated at a time;
* ours, ``--max_batch_size B``  -- batched (``--batch``, default 8);
* peer, ``--max_batch_size B``  -- only with ``--peer`` (ms-swift's ``swift``; ``--peer-extra`` defaults to
  ``--model_type qwen2 --template qwen``, which ms-swift needs for a local folder; its deploy rejects
  ``--check_model``, a training-only flag);
* ours, ``--infer_backend vllm`` -- only with ``--vllm`` (the ``swift`` of ``.venv-vllm``, scripts/setup_vllm.sh;
  on a CPU that is vLLM's CPU build).

Per setting: start-up time (spawn to first ``/v1/models`` answer), wall time of the request burst,
requests/s, generated tokens/s (sum of ``usage.completion_tokens`` / wall), latency p50/p90/p99, errors.
Each setting runs ``--repeats`` times (default 3), the order alternating from one round to the next; the ratios
(issue 18's: ours / peer tokens/s and p99 latency, batched / one-at-a-time tokens/s) compare the medians.

Usage::

    .venv/bin/python bench/deploy_throughput.py
    .venv/bin/python bench/deploy_throughput.py --peer /work/peers/ms-swift-venv/bin/swift --json /tmp/d.json
    .venv/bin/python bench/deploy_throughput.py --vllm .venv-vllm/bin/swift --skip-unbatched
"""
import argparse
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
HERE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_EXTRA = '--model_type qwen2 --template qwen'  # --check_model is a training flag; deploy rejects it
VLLM_EXTRA = '--vllm_enforce_eager true'  # CUDA graphs do not exist on a CPU; on a GPU, drop it for speed


def ensure_model(workdir, seed=42):
    """``<workdir>/model``: built once with sft_throughput's tokenizer and model builders, then reused."""
    model_dir = os.path.join(workdir, 'model')
    if os.path.isfile(os.path.join(model_dir, 'config.json')) and os.path.isfile(
            os.path.join(model_dir, 'tokenizer.json')):
        return model_dir
    from sft_throughput import build_model, build_tokenizer, make_lexicon
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    rng = random.Random(seed)
    tokenizer = build_tokenizer(make_lexicon(rng), seed)
    model = build_model(tokenizer, seed)
    os.makedirs(workdir, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http_json(url, payload=None, timeout=10.0):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_ready(url, proc, timeout):
    """The first served model id, once ``GET /v1/models`` answers; None if the server died or timed out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            models = http_json(f'{url}/v1/models', timeout=2)['data']
            if models:
                return models[0]['id']
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    return None


def make_prompts(n, seed=0):
    from sft_throughput import make_lexicon, sentence
    rng = random.Random(seed)
    lexicon = make_lexicon(random.Random(42))
    return [sentence(rng, lexicon, rng.randint(5, 30)) for _ in range(n)]


def percentile(values, q):
    if not values:
        return float('nan')
    vals = sorted(values)
    k = (len(vals) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def fire(url, model_id, prompts, concurrency, max_tokens, request_timeout, burst_timeout):
    """Send every prompt as a chat completion from ``concurrency`` threads; return per-request results."""
    deadline = time.time() + burst_timeout

    def one(prompt):
        t0 = time.time()
        left = deadline - t0
        if left <= 0:
            return {'ok': False, 'error': 'burst timeout', 'latency': 0.0, 'tokens': 0}
        payload = {'model': model_id, 'messages': [{'role': 'user', 'content': prompt}],
                   'max_tokens': max_tokens, 'temperature': 0}
        try:
            out = http_json(f'{url}/v1/chat/completions', payload, timeout=min(request_timeout, left))
            return {'ok': True, 'latency': time.time() - t0, 'tokens': int(out['usage']['completion_tokens'])}
        except Exception as exc:  # noqa: BLE001 -- counted as an error, the burst goes on
            return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'[:200], 'latency': time.time() - t0,
                    'tokens': 0}

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, prompts))
    return results, time.time() - t0


def bench_side(name, exe, model_dir, batch, backend, extra, opts, prompts):
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    argv = [exe, 'deploy', '--model', model_dir, '--host', '127.0.0.1', '--port', str(port),
            '--max_batch_size', str(batch), '--temperature', '0', '--infer_backend', backend] + shlex.split(extra)
    log_path = os.path.join(opts.workdir, f'{name}.log')
    print(f'[{name}] {" ".join(shlex.quote(a) for a in argv)}', flush=True)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    row = {'name': name, 'batch': batch, 'log': log_path}
    t_start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        model_id = wait_ready(url, proc, opts.start_timeout)
        if model_id is None:
            state = f'exited with {proc.returncode}' if proc.poll() is not None else 'not ready in time'
            tail = open(log_path, errors='replace').read()[-1500:]
            print(f'[{name}] server {state}; log tail:\n{tail}', flush=True)
            row['error'] = f'server {state}'
            return row
        row['startup_s'] = time.time() - t_start
        # one warm-up request, not counted
        fire(url, model_id, prompts[:1], 1, opts.max_tokens, opts.request_timeout, opts.request_timeout)
        results, wall = fire(url, model_id, prompts, opts.concurrency, opts.max_tokens, opts.request_timeout,
                             opts.burst_timeout)
        ok = [r for r in results if r['ok']]
        lat = [r['latency'] for r in ok]
        tokens = sum(r['tokens'] for r in ok)
        row.update(requests=len(results), ok=len(ok), wall_s=wall, req_per_s=len(ok) / wall,
                   tok_per_s=tokens / wall, completion_tokens=tokens, p50_s=percentile(lat, 50),
                   p90_s=percentile(lat, 90), p99_s=percentile(lat, 99))
        row['peak_rss_mb'] = group_peak_rss_mb(proc.pid)
        errors = [r['error'] for r in results if not r['ok']]
        if errors:
            row['errors'] = errors[:3]
            print(f'[{name}] {len(errors)} failed requests, e.g. {errors[0]}', flush=True)
        return row
    finally:
        stop_group(proc)


def group_peak_rss_mb(pgid):
    """The largest peak resident memory (VmHWM) among the server's processes (ms-swift's ``swift`` runs deploy in a
    child), read after the burst, before the server stops."""
    peak = 0
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f'/proc/{pid}/status') as f:
                peak = max([peak] + [int(line.split()[1]) for line in f if line.startswith('VmHWM:')])
        except (OSError, ValueError):
            continue
    return peak / 1024


def stop_group(proc, grace=15.0):
    """SIGTERM the server's process group (ms-swift's ``swift`` runs deploy in a child), wait until every
    member is gone, SIGKILL what is left after ``grace`` seconds."""
    def signal_group(sig):
        try:
            os.killpg(proc.pid, sig)
            return True
        except ProcessLookupError:
            return False

    signal_group(signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline:
        proc.poll()  # reap the leader so the group can empty
        if not signal_group(0):
            break
        time.sleep(0.2)
    else:
        signal_group(signal.SIGKILL)
    proc.wait()


def median_row(runs):
    """The setting's median of each figure over its runs (a failed run counts as an error row if all failed)."""
    good = [r for r in runs if 'error' not in r]
    if not good:
        return runs[0]
    row = dict(good[0])
    for key in ('startup_s', 'wall_s', 'req_per_s', 'tok_per_s', 'p50_s', 'p90_s', 'p99_s', 'peak_rss_mb'):
        row[key] = percentile([r[key] for r in good], 50)
    row['ok'], row['requests'] = sum(r['ok'] for r in good), sum(r['requests'] for r in good)
    row['completion_tokens'] = sum(r['completion_tokens'] for r in good)
    return row


def print_table(rows):
    cols = [('setting', lambda r: r['name']), ('batch', lambda r: str(r['batch'])),
            ('startup s', lambda r: f"{r['startup_s']:.1f}"), ('ok/sent', lambda r: f"{r['ok']}/{r['requests']}"),
            ('wall s', lambda r: f"{r['wall_s']:.2f}"), ('req/s', lambda r: f"{r['req_per_s']:.2f}"),
            ('tok/s', lambda r: f"{r['tok_per_s']:.1f}"), ('gen tokens', lambda r: str(r['completion_tokens'])),
            ('p50 s', lambda r: f"{r['p50_s']:.2f}"), ('p90 s', lambda r: f"{r['p90_s']:.2f}"),
            ('p99 s', lambda r: f"{r['p99_s']:.2f}"), ('peak MiB', lambda r: f"{r.get('peak_rss_mb', 0):.0f}")]
    table = [[h for h, _ in cols]]
    for r in rows:
        table.append([f(r) for _, f in cols] if 'error' not in r else [r['name'], str(r['batch']), r['error']])
    widths = [max(len(line[i]) for line in table if i < len(line)) for i in range(len(cols))]
    for line in table:
        print('  '.join(cell.ljust(widths[i]) for i, cell in enumerate(line)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ours', default=os.path.join(HERE_ROOT, '.venv', 'bin', 'swift'))
    ap.add_argument('--peer', default=None, help="ms-swift's swift executable (optional)")
    ap.add_argument('--vllm', default=None, help='the swift executable of .venv-vllm, for --infer_backend vllm')
    ap.add_argument('--vllm-extra', default=VLLM_EXTRA)
    ap.add_argument('--workdir', default='/tmp/swift-bench-deploy')
    ap.add_argument('--requests', type=int, default=32)
    ap.add_argument('--concurrency', type=int, default=32)
    ap.add_argument('--batch', type=int, default=8, help='max_batch_size of the batched runs')
    ap.add_argument('--max-tokens', type=int, default=64)
    ap.add_argument('--start-timeout', type=float, default=120)
    ap.add_argument('--request-timeout', type=float, default=300)
    ap.add_argument('--burst-timeout', type=float, default=600)
    ap.add_argument('--ours-extra', default='')
    ap.add_argument('--peer-extra', default=PEER_EXTRA)
    ap.add_argument('--skip-unbatched', action='store_true', help='skip ours with --max_batch_size 1')
    ap.add_argument('--json', default=None)
    ap.add_argument('--repeats', type=int, default=3, help='runs per setting, alternating; medians are compared')
    opts = ap.parse_args()

    os.makedirs(opts.workdir, exist_ok=True)
    model_dir = ensure_model(opts.workdir)
    prompts = make_prompts(opts.requests)
    runs = []
    if not opts.skip_unbatched:
        runs.append(('ours-b1', opts.ours, 1, 'pt', opts.ours_extra))
    runs.append((f'ours-b{opts.batch}', opts.ours, opts.batch, 'pt', opts.ours_extra))
    if opts.peer:
        runs.append((f'peer-b{opts.batch}', opts.peer, opts.batch, 'pt', opts.peer_extra))
    if opts.vllm:
        runs.append(('ours-vllm', opts.vllm, opts.batch, 'vllm', opts.vllm_extra))
    all_rows = []
    for repeat in range(opts.repeats):  # alternating the order, so that a drift in the machine's load hits all sides
        for name, exe, b, backend, extra in (runs if repeat % 2 == 0 else runs[::-1]):
            all_rows.append(bench_side(name, exe, model_dir, b, backend, extra, opts, prompts))
    rows = [median_row([r for r in all_rows if r['name'] == name]) for name, *_ in runs]

    print(f'\n{opts.requests} chat requests, {opts.concurrency} concurrent, max_tokens {opts.max_tokens}, '
          f'temperature 0, model {model_dir}; every run:')
    print_table(all_rows)
    print(f'medians of {opts.repeats} runs per setting:')
    print_table(rows)
    by = {r['name']: r for r in rows if 'error' not in r}
    ratios = {}
    b1, bb, peer = by.get('ours-b1'), by.get(f'ours-b{opts.batch}'), by.get(f'peer-b{opts.batch}')
    vllm = by.get('ours-vllm')
    if bb and vllm:
        ratios['vllm_over_pt_tok_per_s'] = vllm['tok_per_s'] / bb['tok_per_s']
        print(f"vllm / pt b{opts.batch}: {ratios['vllm_over_pt_tok_per_s']:.2f}x tok/s")
    if b1 and bb:
        ratios['batching_gain_req_per_s'] = bb['req_per_s'] / b1['req_per_s']
        ratios['batching_gain_tok_per_s'] = bb['tok_per_s'] / b1['tok_per_s']
        print(f"batching gain (b{opts.batch} / b1): {ratios['batching_gain_req_per_s']:.2f}x req/s, "
              f"{ratios['batching_gain_tok_per_s']:.2f}x tok/s")
    if bb and peer:
        keys = ('req_per_s', 'tok_per_s', 'p50_s', 'p90_s', 'p99_s', 'startup_s', 'peak_rss_mb')
        for key in keys:
            ratios[f'ours_over_peer_{key}'] = bb[key] / peer[key] if peer[key] else float('nan')
        print('ours / peer (batched): ' + ', '.join(f"{k}: {ratios[f'ours_over_peer_{k}']:.2f}" for k in keys))
        print(f"issue 18 goal: tok/s ours / peer >= 1.5: {ratios['ours_over_peer_tok_per_s']:.2f}; p99 ours / peer "
              f"<= 1: {ratios['ours_over_peer_p99_s']:.2f}")
    if b1 and bb:
        print(f"issue 18 goal: tok/s b{opts.batch} / b1 >= 4: {ratios['batching_gain_tok_per_s']:.2f}")
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump({'config': vars(opts), 'rows': rows, 'runs': all_rows, 'ratios': ratios}, f, indent=2)
        print(f'wrote {opts.json}')


if __name__ == '__main__':
    main()
