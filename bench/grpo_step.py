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
import json
import os

from side_by_side import ROOT, main

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


if __name__ == '__main__':
    main(__file__, __doc__.split('\n')[0], {'ours': run_ours, 'trl': run_trl},
         'GRPO, {steps} steps of 8 completions, LoRA r8, Qwen2 hidden {hidden} x {layers} layers', default_steps=10)
