#!/usr/bin/env bash
# Encode once, train many times (ms-swift's examples/train/cached_dataset/sft.sh, sized for a small model):
# swift export writes the encoded rows to cached/train and cached/val; swift sft trains on them without encoding.
# A cached folder encoded with another template, tokenizer or --max_length is refused in one line.
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift export \
    --model "$MODEL" \
    --dataset examples/data/alpaca_zh_sample.jsonl \
    --split_dataset_ratio 0.1 \
    --max_length 2048 \
    --dataset_num_proc 2 \
    --to_cached_dataset true \
    --exist_ok true \
    --output_dir cached_dataset

swift sft \
    --model "$MODEL" \
    --train_type lora \
    --cached_dataset cached_dataset/train \
    --cached_val_dataset cached_dataset/val \
    --num_train_epochs 1 \
    --torch_dtype bfloat16 \
    --per_device_train_batch_size 2 \
    --learning_rate 1e-4 \
    --packing true \
    --max_length 2048 \
    --eval_steps 50 \
    --save_steps 50 \
    --logging_steps 5 \
    --output_dir output
