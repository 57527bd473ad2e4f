#!/usr/bin/env bash
# The seeds' single-GPU LoRA command (seed 001), with a local model and dataset. Runs on a CPU as written:
# --torch_dtype bfloat16 computes in float32 there and --attn_impl flash_attn falls back to sdpa, each with a warning.
set -euo pipefail
. "$(dirname "$0")/../_model.sh"
CUDA_VISIBLE_DEVICES=0 \
swift sft \
    --model "$MODEL" \
    --dataset examples/data/alpaca_zh_sample.jsonl \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --num_train_epochs 1 \
    --per_device_train_batch_size 1 \
    --gradient_accumulation_steps 16 \
    --learning_rate 1e-4 \
    --max_length 2048 \
    --eval_steps 50 \
    --save_steps 50 \
    --save_total_limit 2 \
    --logging_steps 5 \
    --output_dir output \
    --system 'You are a helpful assistant.' \
    --warmup_ratio 0.05 \
    --dataloader_num_workers 4 \
    --attn_impl flash_attn
