#!/usr/bin/env bash
# SimPO: length-normalised rewards and a target margin --simpo_gamma; no reference model.
# Data in the seeds' format: examples/train/rlhf/data/pairs.jsonl. Any model folder or hub id: MODEL=... bash $0
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift rlhf \
    --rlhf_type simpo \
    --model "$MODEL" \
    --dataset examples/train/rlhf/data/pairs.jsonl \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --beta 2.0 \
    --simpo_gamma 1.0 \
    --num_train_epochs 2 \
    --per_device_train_batch_size 4 \
    --learning_rate 5e-4 \
    --split_dataset_ratio 0.25 \
    --eval_steps 10 \
    --save_steps 10 \
    --logging_steps 2 \
    --output_dir output/simpo
