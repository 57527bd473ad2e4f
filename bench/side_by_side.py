"""The harness of the step benchmarks against trl (dpo_step.py, grpo_step.py): each side trains in a fresh process
on the same tiny model; sides alternate for ``--repeats`` rounds; medians and the ratio ours / trl are printed.

A side is ``run(model_dir, steps, out_dir) -> train_runtime``. Each child reports s/step (``train_runtime`` over
the steps) and its peak RSS (``ru_maxrss``: imports and model loading included); the parent adds the wall time.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Side = Callable[[str, int, str], float]


def _child(run: Side, model_dir: str, steps: int) -> None:
    with tempfile.TemporaryDirectory() as out_dir:
        runtime = run(model_dir, steps, out_dir)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print('RESULT ' + json.dumps({'s_per_step': runtime / steps, 'peak_rss_mib': peak_mib}))


def _measure(script: str, side: str, model_dir: str, steps: int) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, script, '--child', side, '--model', model_dir, '--steps', str(steps)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.exit(f'{side} failed:\n{proc.stderr[-3000:]}')
    line = next(line for line in proc.stdout.splitlines() if line.startswith('RESULT '))
    return {**json.loads(line[len('RESULT '):]), 'wall_s': time.perf_counter() - start}


def _report(title: str, runs: dict[str, list[dict]]) -> None:
    medians = {side: {k: statistics.median(r[k] for r in results) for k in results[0]}
               for side, results in runs.items()}
    print(f'\n{title} (medians)')
    print(f"{'':8}{'s/step':>10}{'peak RSS MiB':>15}{'wall s':>10}")
    for side, m in medians.items():
        print(f"{side:8}{m['s_per_step']:>10.3f}{m['peak_rss_mib']:>15.0f}{m['wall_s']:>10.1f}")
    ours, trl = medians['ours'], medians['trl']
    print(f"{'ours/trl':8}{ours['s_per_step'] / trl['s_per_step']:>10.2f}"
          f"{ours['peak_rss_mib'] / trl['peak_rss_mib']:>15.2f}{ours['wall_s'] / trl['wall_s']:>10.2f}")


def main(script: str, description: str, sides: dict[str, Side], title: str, default_steps: int) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--steps', type=int, default=default_steps)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--hidden', type=int, default=256)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--child', choices=list(sides))
    parser.add_argument('--model')
    args = parser.parse_args()
    if args.child:
        return _child(sides[args.child], args.model, args.steps)
    runs = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, 'model')
        subprocess.run([sys.executable, '-m', 'swift.utils.tiny_models', model_dir, '--family', 'qwen2',
                        '--hidden', str(args.hidden), '--layers', str(args.layers), '--vocab', '2000'],
                       check=True, capture_output=True, cwd=ROOT)
        for _ in range(args.repeats):
            for side in sides:
                runs[side].append(_measure(script, side, model_dir, args.steps))
                print(side, {k: round(v, 3) for k, v in runs[side][-1].items()}, flush=True)
    _report(title.format(steps=args.steps, hidden=args.hidden, layers=args.layers), runs)
