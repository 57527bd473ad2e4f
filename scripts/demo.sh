#!/usr/bin/env bash
# The main job, offline on a CPU: install, build a small model, teach it its new name on swift/self-cognition,
# then ask it "who are you?". Takes about 3 minutes after the install on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
rm -rf demo
# A 1.2M-parameter Qwen2-architecture model with random weights and a tokenizer trained here.
SELF_COGNITION=$(python -c "import os, swift.dataset as d; print(os.path.join(os.path.dirname(d.__file__), 'data', 'self_cognition.jsonl'))")
python -m swift.utils.tiny_models demo/model --family qwen2 --hidden 128 --layers 2 --vocab 2000 --corpus "$SELF_COGNITION"
# The quick-start command of the seeds, with a learning rate and rank a random-weight model needs to learn quickly.
swift sft \
    --model demo/model \
    --dataset 'swift/self-cognition#500' \
    --model_name 小黄 'Xiao Huang' \
    --model_author 魔搭 ModelScope \
    --train_type lora \
    --lora_rank 32 \
    --lora_alpha 64 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --learning_rate 5e-3 \
    --num_train_epochs 3 \
    --per_device_train_batch_size 8 \
    --logging_steps 20 \
    --save_steps 1000 \
    --split_dataset_ratio 0 \
    --gradient_checkpointing false \
    --output_dir demo/output
CKPT=$(ls -d demo/output/v*/checkpoint-* | sort -V | tail -1)
echo "asking $CKPT: who are you?"
printf 'who are you?\nexit\n' | swift infer --adapters "$CKPT" --stream true --temperature 0 --max_new_tokens 64
