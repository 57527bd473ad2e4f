#!/usr/bin/env python3
"""GRPO step time and peak memory: our ``swift rlhf --rlhf_type grpo`` beside trl's own ``GRPOTrainer``, on CPU.

Both sides train the same tiny Qwen2 model (built offline, random weights) on the same prompts
(examples/train/grpo/data/numina_math.jsonl; trl gets them as prompt messages with the same system prompt), with the
same LoRA (rank 8, alpha 32, all-linear, dropout 0.05), 8 completions a step (2 prompts x 4 generations) of at most
32 tokens, temperature 0.9, beta 0.04 (the base with the adapter disabled as the reference), fp32, learning rate
1e-5, and the same reward functions (our ``accuracy`` and ``format``, which follow trl's calling convention). A step
is one generation and one update. Each side runs in a fresh process and reports:

* s/step       -- ``train_runtime / max_steps`` from the Trainer (the first step included);
* peak RSS     -- the process's maximum resident set (``ru_maxrss``), model loading and imports included;
* wall         -- the whole process, imports and model loading included.

Sides alternate for ``--repeats`` rounds; the table shows each run and the medians, and the ratio ours / trl.

Usage::

    .venv/bin/python bench/grpo_step.py --steps 10 --repeats 2
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = os.path.join(ROOT, 'examples', 'train', 'grpo', 'data', 'numina_math.jsonl')
SYSTEM = os.path.join(ROOT, 'examples', 'train', 'grpo', 'prompt.txt')
GRPO = {'num_generations': 4, 'max_completion_length': 32, 'temperature': 0.9, 'beta': 0.04, 'learning_rate': 1e-5}
LORA = {'r': 8, 'lora_alpha': 32, 'lora_dropout': 0.05, 'target_modules': 'all-linear'}


def run_ours(model_dir: str, steps: int, out_dir: str) -> float:
    from swift.llm import rlhf_main
    flags = [f'--{name}={value}' for name, value in GRPO.items()]
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', model_dir, '--dataset', PROMPTS, '--system', SYSTEM,
                        '--reward_funcs', 'accuracy', 'format', '--train_type', 'lora', '--lora_rank', '8',
                        '--lora_alpha', '32', '--lora_dropout', '0.05', '--per_device_train_batch_size', '8',
                        *flags, '--max_steps', str(steps), '--split_dataset_ratio', '0', '--logging_steps', '10',
                        '--save_strategy', 'no', '--report_to', 'none', '--output_dir', out_dir,
                        '--dataloader_num_workers', '0'])
    return result['log_history'][-1]['train_runtime']


def run_trl(model_dir: str, steps: int, out_dir: str) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from swift.rlhf.rewards import get_reward_funcs
    with open(SYSTEM, encoding='utf-8') as f:
        system = f.read().strip()
    with open(PROMPTS, encoding='utf-8') as f:
        rows = [json.loads(line) for line in f]
    data = [{'prompt': [{'role': 'system', 'content': system}, {'role': 'user', 'content': row['problem']}],
             'solution': row['solution']} for row in rows]
    config = GRPOConfig(output_dir=out_dir, per_device_train_batch_size=8, max_steps=steps, logging_steps=10,
                        save_strategy='no', report_to='none', use_cpu=True, bf16=False, dataloader_num_workers=0,
                        # trl's default turns gradient checkpointing on; ours leaves it off on a CPU
                        gradient_checkpointing=False, loss_type='grpo', **GRPO)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=config,
                          reward_funcs=get_reward_funcs(['accuracy', 'format']), train_dataset=Dataset.from_list(data),
                          processing_class=AutoTokenizer.from_pretrained(model_dir),
                          peft_config=LoraConfig(task_type='CAUSAL_LM', **LORA))
    return trainer.train().metrics['train_runtime']


def child(side: str, model_dir: str, steps: int) -> None:
    with tempfile.TemporaryDirectory() as out_dir:
        runtime = (run_ours if side == 'ours' else run_trl)(model_dir, steps, out_dir)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print('RESULT ' + json.dumps({'s_per_step': runtime / steps, 'peak_rss_mib': peak_mib}))


def measure(side: str, model_dir: str, steps: int) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, '--child', side, '--model', model_dir, '--steps', str(steps)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.exit(f'{side} failed:\n{proc.stderr[-3000:]}')
    line = next(l for l in proc.stdout.splitlines() if l.startswith('RESULT '))
    return {**json.loads(line[len('RESULT '):]), 'wall_s': time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--hidden', type=int, default=256)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--child', choices=['ours', 'trl'])
    parser.add_argument('--model')
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.steps)
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, 'model')
        subprocess.run([sys.executable, '-m', 'swift.utils.tiny_models', model_dir, '--family', 'qwen2',
                        '--hidden', str(args.hidden), '--layers', str(args.layers), '--vocab', '2000'],
                       check=True, capture_output=True)
        runs = {'ours': [], 'trl': []}
        for _ in range(args.repeats):
            for side in runs:
                runs[side].append(measure(side, model_dir, args.steps))
                print(side, {k: round(v, 3) for k, v in runs[side][-1].items()}, flush=True)
    medians = {side: {k: statistics.median(r[k] for r in results) for k in results[0]}
               for side, results in runs.items()}
    print(f'\nGRPO, {args.steps} steps of 8 completions, LoRA r8, Qwen2 hidden {args.hidden} x {args.layers} layers '
          '(medians)')
    print(f"{'':8}{'s/step':>10}{'peak RSS MiB':>15}{'wall s':>10}")
    for side, m in medians.items():
        print(f"{side:8}{m['s_per_step']:>10.3f}{m['peak_rss_mib']:>15.0f}{m['wall_s']:>10.1f}")
    ours, trl = medians['ours'], medians['trl']
    print(f"{'ours/trl':8}{ours['s_per_step'] / trl['s_per_step']:>10.2f}"
          f"{ours['peak_rss_mib'] / trl['peak_rss_mib']:>15.2f}{ours['wall_s'] / trl['wall_s']:>10.2f}")


if __name__ == '__main__':
    main()
