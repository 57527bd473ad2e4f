#!/usr/bin/env python3
"""DPO step time and peak memory: our ``swift rlhf --rlhf_type dpo`` beside trl's own ``DPOTrainer``, on CPU.

Both sides train the same tiny Qwen2 model (built offline, random weights) on the same 40 preference pairs
(examples/train/rlhf/data/pairs.jsonl, the seeds' format; trl gets them as prompt/chosen/rejected messages), with
the same LoRA (rank 8, alpha 32, all-linear, dropout 0.05), batch 4, fp32, learning rate 5e-4, and the reference
model being the base with the adapter disabled. Each side runs in a fresh process and reports:

* s/step       -- ``train_runtime / max_steps`` from the Trainer (the first step included);
* peak RSS     -- the process's maximum resident set (``ru_maxrss``), model loading and imports included;
* wall         -- the whole process, imports and model loading included.

Sides alternate for ``--repeats`` rounds; the table shows each run and the medians, and the ratio ours / trl.
``ours_plain`` is ours with the shared-prompt forward switched off (trl's two full rows per pair), for the
before/after of that change in the same run. ``DPO_BENCH_PRECOMPUTE=1`` gives both sides
``precompute_ref_log_probs`` (computed at start-up, outside ``train_runtime``).

Usage::

    .venv/bin/python bench/dpo_step.py --steps 30 --repeats 2
"""
import json
import os

from side_by_side import ROOT, main

PRECOMPUTE = os.environ.get('DPO_BENCH_PRECOMPUTE') == '1'
PAIRS = os.path.join(ROOT, 'examples', 'train', 'rlhf', 'data', 'pairs.jsonl')
LORA = {'r': 8, 'lora_alpha': 32, 'lora_dropout': 0.05, 'target_modules': 'all-linear'}


def run_ours(model_dir: str, steps: int, out_dir: str) -> float:
    from swift.llm import rlhf_main
    result = rlhf_main(['--rlhf_type', 'dpo', '--model', model_dir, '--dataset', PAIRS, '--train_type', 'lora',
                        '--lora_rank', '8', '--lora_alpha', '32', '--lora_dropout', '0.05',
                        '--per_device_train_batch_size', '4', '--learning_rate', '5e-4', '--max_steps', str(steps),
                        '--split_dataset_ratio', '0', '--logging_steps', '10', '--save_strategy', 'no',
                        '--report_to', 'none', '--output_dir', out_dir, '--dataloader_num_workers', '0',
                        '--precompute_ref_log_probs', str(PRECOMPUTE).lower()])
    return result['log_history'][-1]['train_runtime']


def run_ours_plain(model_dir: str, steps: int, out_dir: str) -> float:
    from swift.rlhf import dpo
    dpo.share_prompt_forward = lambda *args: False
    return run_ours(model_dir, steps, out_dir)


def run_trl(model_dir: str, steps: int, out_dir: str) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    rows = []
    with open(PAIRS, encoding='utf-8') as f:
        for line in f:
            row = json.loads(line)
            rows.append({'prompt': row['messages'][:-1], 'chosen': row['messages'][-1:],
                         'rejected': [{'role': 'assistant', 'content': row['rejected_response']}]})
    config = DPOConfig(output_dir=out_dir, per_device_train_batch_size=4, learning_rate=5e-4, max_steps=steps,
                       logging_steps=10, save_strategy='no', report_to='none', use_cpu=True, bf16=False,
                       # trl's default turns gradient checkpointing on; ours leaves it off on a CPU
                       dataloader_num_workers=0, gradient_checkpointing=False, precompute_ref_log_probs=PRECOMPUTE)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=config,
                         train_dataset=Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(model_dir),
                         peft_config=LoraConfig(task_type='CAUSAL_LM', **LORA))
    return trainer.train().metrics['train_runtime']


if __name__ == '__main__':
    main(__file__, __doc__.split('\n')[0], {'ours': run_ours, 'trl': run_trl, 'ours_plain': run_ours_plain},
         'DPO, {steps} steps, batch 4, LoRA r8, Qwen2 hidden {hidden} x {layers} layers', default_steps=30)
