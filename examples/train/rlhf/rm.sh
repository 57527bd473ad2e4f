#!/usr/bin/env bash
# A reward model: a scoring head on the LM, trained on the pairs; then swift infer scores the held-out pairs.
# Data in the seeds' format: examples/train/rlhf/data/pairs.jsonl. Any model folder or hub id: MODEL=... bash $0
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift rlhf \
    --rlhf_type rm \
    --model "$MODEL" \
    --dataset examples/train/rlhf/data/pairs.jsonl \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --center_rewards_coefficient 0.01 \
    --num_train_epochs 2 \
    --per_device_train_batch_size 4 \
    --learning_rate 5e-4 \
    --split_dataset_ratio 0.25 \
    --eval_steps 10 \
    --save_steps 10 \
    --logging_steps 2 \
    --output_dir output/rm
swift infer --adapters "$(last_checkpoint output/rm)" --load_data_args true
