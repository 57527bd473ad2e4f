#!/usr/bin/env bash
# GKD: distil a teacher into the student (MODEL) on a mix of its own samples (--lmbda of the batches) and the
# dataset's answers (the chosen answers of examples/train/rlhf/data/pairs.jsonl; any sft data will do).
# The teacher must share the student's tokenizer: TEACHER=Qwen/Qwen2.5-7B-Instruct MODEL=Qwen/Qwen2.5-0.5B-Instruct
# Without TEACHER, a second tiny random model (same tokenizer, twice as wide) is built offline.
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
: "${TEACHER:=demo/teacher}"
if [ ! -d "$TEACHER" ] && [ "$TEACHER" = demo/teacher ]; then
    python -m swift.utils.tiny_models "$TEACHER" --family qwen2 --hidden 256 --layers 2 --vocab 2000
fi
swift rlhf \
    --rlhf_type gkd \
    --model "$MODEL" \
    --teacher_model "$TEACHER" \
    --dataset examples/train/rlhf/data/pairs.jsonl \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --lmbda 0.5 \
    --beta 0.5 \
    --seq_kd false \
    --temperature 0.9 \
    --max_completion_length 64 \
    --num_train_epochs 2 \
    --per_device_train_batch_size 4 \
    --learning_rate 5e-4 \
    --split_dataset_ratio 0.25 \
    --eval_steps 10 \
    --save_steps 10 \
    --logging_steps 2 \
    --output_dir output/gkd
