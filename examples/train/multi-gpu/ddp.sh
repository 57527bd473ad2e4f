#!/usr/bin/env bash
# NPROC_PER_NODE launches torchrun; on a CPU the processes talk over gloo.
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
NPROC_PER_NODE=2 \
swift sft \
    --model "$MODEL" \
    --dataset examples/data/alpaca_zh_sample.jsonl \
    --train_type lora \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --per_device_train_batch_size 1 \
    --gradient_accumulation_steps 4 \
    --num_train_epochs 1 \
    --output_dir output
