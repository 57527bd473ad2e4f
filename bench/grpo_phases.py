#!/usr/bin/env python3
"""Where a GRPO step's time goes: CPU seconds per phase of ``bench/grpo_step.py``'s run of ours, with the fast
path (swift/rlhf/grpo_generation.py, grpo_packing.py) on and off (``GRPOTrainer.fast_path``, off = trl's own
generation and log-probability passes), each side in a fresh process.

Torch runs on one thread and each phase is timed in process CPU time (``time.process_time``), so the figures hold
while other processes share the machine (wall time does not: on two busy cores torch's threads spin).

Usage::

    .venv/bin/python bench/grpo_phases.py --steps 4
"""
import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import grpo_step
from side_by_side import ROOT


def _timed(cls, name: str, totals: dict, label) -> None:
    real = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        start = time.process_time()
        try:
            return real(self, *args, **kwargs)
        finally:
            totals[label() if callable(label) else label] += time.process_time() - start
    setattr(cls, name, wrapper)


def _child(model_dir: str, steps: int, fast: bool) -> None:
    import accelerate
    import torch

    from swift.rlhf import grpo
    torch.set_num_threads(1)
    grpo.GRPOTrainer.fast_path = fast
    totals = collections.defaultdict(float)
    _timed(grpo.GRPOTrainer, '_generate_single_turn', totals, 'generation')
    _timed(grpo.GRPOTrainer, '_get_per_token_logps_and_entropies', totals,
           lambda: 'loss log-probs' if torch.is_grad_enabled() else 'reference log-probs')
    _timed(accelerate.Accelerator, 'backward', totals, 'backward')
    _timed(grpo.GRPOTrainer, 'training_step', totals, 'step')
    with tempfile.TemporaryDirectory() as out_dir:
        grpo_step.run_ours(model_dir, steps, out_dir)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print('RESULT ' + json.dumps({**{k: v / steps for k, v in totals.items()}, 'peak RSS MiB': peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=4)
    parser.add_argument('--child', choices=['fast', 'plain'])
    parser.add_argument('--model')
    args = parser.parse_args()
    if args.child:
        return _child(args.model, args.steps, args.child == 'fast')
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, 'model')
        subprocess.run([sys.executable, '-m', 'swift.utils.tiny_models', model_dir, '--family', 'qwen2', '--hidden',
                        '256', '--layers', '4', '--vocab', '2000'], check=True, capture_output=True, cwd=ROOT)
        results = {}
        for side in ('plain', 'fast'):
            proc = subprocess.run([sys.executable, __file__, '--child', side, '--model', model_dir, '--steps',
                                   str(args.steps)], capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                sys.exit(f'{side} failed:\n{proc.stderr[-3000:]}')
            line = next(line for line in proc.stdout.splitlines() if line.startswith('RESULT '))
            results[side] = json.loads(line[len('RESULT '):])
    print(f"{'CPU s/step, 1 thread':24}{'plain (trl)':>12}{'fast':>10}{'fast/plain':>12}")
    for phase in results['plain']:
        plain, fast = results['plain'][phase], results['fast'].get(phase, 0.0)
        print(f'{phase:24}{plain:>12.3f}{fast:>10.3f}{fast / plain:>12.2f}')


if __name__ == '__main__':
    main()
