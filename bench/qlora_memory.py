#!/usr/bin/env python3
"""Peak memory of LoRA against QLoRA: the same short ``swift sft`` run on the same model, once over the float32
base and once over its bitsandbytes NF4 copy, each in a fresh process. Prints, for each, the peak RSS (VmHWM),
the peak of its anonymous part (RssAnon, sampled every 20 ms: memory the process allocated, as opposed to pages of
mapped files, which the kernel can drop and read again), and the weights' footprint; then the ratios.

The model is a random-weight Qwen2 of hidden size 1024 and 8 layers (~120M parameters, ~480 MB in float32), so the
weights, not activations or the runtime, dominate memory. Built once, offline, with ``swift.utils.tiny_models``.

    .venv/bin/python bench/qlora_memory.py [--workdir /tmp/swift-bench-qlora] [--steps 5] [--extra '...']
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time


def _status_mb(key: str) -> float:
    with open('/proc/self/status', encoding='ascii') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024


class _PeakSampler(threading.Thread):

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_anon = 0.0

    def run(self):
        while True:
            self.peak_anon = max(self.peak_anon, _status_mb('RssAnon'))
            time.sleep(0.02)


def _run_one(model_dir: str, data: str, out_dir: str, steps: int, qlora: bool, extra: list[str]) -> None:
    """In this process: train, then print the peak RSS figures in MB."""
    from swift.llm import sft_main
    sampler = _PeakSampler()
    sampler.start()
    flags = ['--model', model_dir, '--dataset', data, '--max_steps', str(steps), '--split_dataset_ratio', '0',
             '--lora_rank', '8', '--target_modules', 'all-linear', '--max_length', '256', '--save_strategy', 'no',
             '--output_dir', out_dir, '--report_to', 'none']
    result = sft_main(flags + (['--train_type', 'qlora'] if qlora else ['--train_type', 'lora']) + extra)
    time.sleep(0.05)
    print(json.dumps({'peak_rss': _status_mb('VmHWM'), 'peak_anon': sampler.peak_anon,
                      'first_loss': result['log_history'][0].get('loss'), 'weights': _weights_mb(model_dir, qlora)}))


def _weights_mb(model_dir: str, qlora: bool) -> float:
    """The base model's own footprint as transformers reports it (fp32, or NF4 plus the layers kept in fp32)."""
    from transformers import AutoModelForCausalLM

    from swift.model import bnb_config
    kwargs = {'quantization_config': bnb_config(4)} if qlora else {}
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).get_memory_footprint() / 2**20


def _prepare(workdir: str) -> tuple[str, str]:
    from swift.utils.tiny_models import build_tiny_model
    model_dir, data = os.path.join(workdir, 'model'), os.path.join(workdir, 'rows.jsonl')
    if not os.path.isfile(os.path.join(model_dir, 'config.json')):
        build_tiny_model(model_dir, 'qwen2', hidden_size=1024, num_layers=8, vocab_size=2000)
    with open(data, 'w', encoding='utf-8') as f:
        for i in range(32):
            row = {'query': f'question {i}: who are you and what can you do?',
                   'response': 'I am a small assistant model trained to answer questions. ' * 4}
            f.write(json.dumps(row) + '\n')
    return model_dir, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', default='/tmp/swift-bench-qlora')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--extra', default='', help="more 'swift sft' flags for both runs, one string")
    parser.add_argument('--one', choices=['lora', 'qlora'], help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    model_dir, data = os.path.join(args.workdir, 'model'), os.path.join(args.workdir, 'rows.jsonl')
    if args.one:
        _run_one(model_dir, data, os.path.join(args.workdir, args.one), args.steps, args.one == 'qlora',
                 args.extra.split())
        return
    os.makedirs(args.workdir, exist_ok=True)
    _prepare(args.workdir)
    peaks = {}
    for kind in ('lora', 'qlora'):
        child = subprocess.run([sys.executable, __file__, '--workdir', args.workdir, '--steps', str(args.steps),
                                '--extra', args.extra, '--one', kind], capture_output=True, text=True, check=True)
        peaks[kind] = json.loads(child.stdout.strip().splitlines()[-1])
        p = peaks[kind]
        print(f"{kind:6s} peak RSS {p['peak_rss']:6.0f} MB   peak anonymous {p['peak_anon']:6.0f} MB   "
              f"weights {p['weights']:5.0f} MB   first loss {p['first_loss']}")
    for key in ('peak_rss', 'peak_anon', 'weights'):
        print(f"qlora / lora {key:10s} {peaks['qlora'][key] / peaks['lora'][key]:.2f}")


if __name__ == '__main__':
    main()
