#!/usr/bin/env bash
# KTO: unpaired answers, each labelled desirable (true) or not (false).
# Data in the seeds' format: examples/train/rlhf/data/kto.jsonl. Any model folder or hub id: MODEL=... bash $0
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift rlhf \
    --rlhf_type kto \
    --model "$MODEL" \
    --dataset examples/train/rlhf/data/kto.jsonl \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --desirable_weight 1.0 \
    --undesirable_weight 1.0 \
    --num_train_epochs 2 \
    --per_device_train_batch_size 4 \
    --learning_rate 5e-4 \
    --split_dataset_ratio 0.25 \
    --eval_steps 10 \
    --save_steps 10 \
    --logging_steps 2 \
    --output_dir output/kto
