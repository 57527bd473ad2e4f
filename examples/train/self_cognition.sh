#!/usr/bin/env bash
# The quick-start self-cognition command (seed 003) on the built-in swift/self-cognition dataset, then a question.
set -euo pipefail
. "$(dirname "$0")/../_model.sh"
swift sft \
    --model "$MODEL" \
    --train_type lora \
    --dataset 'swift/self-cognition#500' \
    --torch_dtype bfloat16 \
    --num_train_epochs 1 \
    --per_device_train_batch_size 1 \
    --per_device_eval_batch_size 1 \
    --learning_rate 1e-4 \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --gradient_accumulation_steps 16 \
    --eval_steps 50 \
    --save_steps 50 \
    --save_total_limit 2 \
    --logging_steps 5 \
    --max_length 2048 \
    --output_dir output \
    --system 'You are a helpful assistant.' \
    --warmup_ratio 0.05 \
    --dataloader_num_workers 4 \
    --model_author swift \
    --model_name swift-robot
printf 'who are you?\nexit\n' | swift infer --adapters "$(last_checkpoint output)" --stream true --temperature 0 --max_new_tokens 64
