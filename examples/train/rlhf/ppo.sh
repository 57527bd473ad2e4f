#!/usr/bin/env bash
# PPO: first a reward model on the pairs (as rm.sh), then PPO on the pairs' prompts, scored by that reward model.
# The value model starts as a copy of the reward model; the reference is the base model with the adapter disabled.
# Data in the seeds' format: examples/train/rlhf/data/pairs.jsonl. Any model folder or hub id: MODEL=... bash $0
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
# Both models: LoRA over the same base.
TUNER=(--train_type lora --lora_rank 8 --lora_alpha 32 --target_modules all-linear --torch_dtype bfloat16)
swift rlhf \
    --rlhf_type rm \
    --model "$MODEL" \
    --dataset examples/train/rlhf/data/pairs.jsonl \
    "${TUNER[@]}" \
    --num_train_epochs 2 \
    --per_device_train_batch_size 4 \
    --learning_rate 5e-4 \
    --split_dataset_ratio 0 \
    --save_steps 20 \
    --logging_steps 2 \
    --output_dir output/ppo_rm
swift rlhf \
    --rlhf_type ppo \
    --model "$MODEL" \
    --reward_model "$(last_checkpoint output/ppo_rm)" \
    --dataset examples/train/rlhf/data/pairs.jsonl \
    "${TUNER[@]}" \
    --response_length 32 \
    --temperature 0.7 \
    --num_ppo_epochs 4 \
    --kl_coef 0.05 \
    --num_train_epochs 1 \
    --per_device_train_batch_size 4 \
    --learning_rate 1e-5 \
    --split_dataset_ratio 0.25 \
    --eval_steps 5 \
    --save_steps 5 \
    --logging_steps 1 \
    --output_dir output/ppo
echo 'What do you think about owls?' | swift infer --adapters "$(last_checkpoint output/ppo)" --max_new_tokens 32 --temperature 0
