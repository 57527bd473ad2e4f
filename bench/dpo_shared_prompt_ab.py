#!/usr/bin/env python3
"""DPO's shared-prompt forward against trl's two rows per pair, phase by phase, in one process (alternating).

Times the policy forward, the reference forward (adapter disabled, no grad) and the backward of one pair batch
(4 pairs, prompts of about 45 tokens, answers of about 33, as in bench/dpo_step.py's data) on the bench's tiny
Qwen2 with LoRA r8, through trl's fused LM head with and without ``swift/rlhf/shared_prompt.py`` on top.
Same process, so the machine's load hits both sides alike; prints the medians and the ratios.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/dpo_shared_prompt_ab.py [--repeats 8]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from swift.rlhf import shared_prompt

OUTPUTS = ('log_probs', 'entropy', 'mean_logits', 'is_top1')
PHASES = ('policy forward', 'reference forward', 'backward')


def build(model_dir: str, share: bool):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=OUTPUTS)
    if share:
        shared_prompt.share_prompt_forward(model, OUTPUTS)
    lora = LoraConfig(task_type='CAUSAL_LM', r=8, lora_alpha=32, lora_dropout=0.05, target_modules='all-linear')
    return get_peft_model(model, lora)


def pair_batch(vocab: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    prompts, chosen, rejected = [44, 46, 45, 43], [33, 32, 34, 31], [34, 33, 32, 35]
    rows, masks = [], []
    for answers in (chosen, rejected):
        for i, (prompt, answer) in enumerate(zip(prompts, answers)):
            prompt_ids = torch.randint(3, vocab, (prompt,), generator=torch.Generator().manual_seed(i))
            rows.append(torch.cat([prompt_ids, torch.randint(3, vocab, (answer,), generator=gen)]))
            masks.append(torch.tensor([0] * prompt + [1] * answer))
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        ids[i, :len(row)], attention[i, :len(row)] = row, 1
        labels[i, :len(row)] = row.masked_fill(mask == 0, -100)
    return {'input_ids': ids, 'attention_mask': attention, 'labels': labels, 'use_cache': False,
            'fused_lm_head': True}


def step(model, batch: dict) -> tuple[float, float, float]:
    start = time.perf_counter()
    policy = model(**batch)
    forward = time.perf_counter()
    with torch.no_grad(), model.disable_adapter():
        reference = model(**batch)
    ref = time.perf_counter()
    (policy.log_probs.sum(1) - reference.log_probs.sum(1)).sum().backward()
    return forward - start, ref - forward, time.perf_counter() - ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable, '-m', 'swift.utils.tiny_models', work, '--family', 'qwen2', '--hidden', '256',
                        '--layers', '4', '--vocab', '2000'], check=True, capture_output=True)
        models = {'plain': build(work, False), 'shared': build(work, True)}
        batch = pair_batch(models['plain'].config.vocab_size)
        times = {side: [] for side in models}
        for _ in range(args.repeats + 1):  # the first round warms up
            for side, model in models.items():
                times[side].append(step(model, batch))
    medians = {side: [statistics.median(t[i] for t in runs[1:]) for i in range(3)] for side, runs in times.items()}
    print(f"{'phase':20}{'plain s':>10}{'shared s':>10}{'ratio':>8}")
    for i, phase in enumerate(PHASES + ('total',)):
        plain, shared = (sum(m) if phase == 'total' else m[i] for m in (medians['plain'], medians['shared']))
        print(f'{phase:20}{plain:>10.3f}{shared:>10.3f}{shared / plain:>8.2f}')


if __name__ == '__main__':
    main()
