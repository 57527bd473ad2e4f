#!/usr/bin/env bash
# swift pt: no chat template, loss on every token. Rows are {"text": ...}, {"response": ...} or assistant messages.
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift pt \
    --model "$MODEL" \
    --dataset examples/data/pretrain_sample.jsonl \
    --train_type full \
    --torch_dtype bfloat16 \
    --num_train_epochs 1 \
    --per_device_train_batch_size 2 \
    --learning_rate 1e-5 \
    --max_length 2048 \
    --save_steps 50 \
    --logging_steps 5 \
    --output_dir output
