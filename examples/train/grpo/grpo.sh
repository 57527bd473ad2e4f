#!/usr/bin/env bash
# The GRPO command of seed 000, unchanged but for the model and the dataset: a NuminaMath-TIR-style file here
# (the hub id AI-MO/NuminaMath-TIR works where the hub is reachable). Where vLLM cannot run, --use_vllm true
# generates with transformers instead (one warning). In .venv-vllm on a CPU (vLLM's CPU build) vLLM generates;
# --sleep_level and the offload flags are ignored there (one warning), and 0.5 of host memory is used when free.
# MAX_COMPLETION_LENGTH (default 1024, as in the seed) shortens the run on a CPU.
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
swift rlhf \
    --rlhf_type grpo \
    --model "$MODEL" \
    --reward_funcs accuracy format \
    --train_type lora \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --torch_dtype bfloat16 \
    --dataset examples/train/grpo/data/numina_math.jsonl#1000 \
    --max_completion_length "${MAX_COMPLETION_LENGTH:-1024}" \
    --num_train_epochs 1 \
    --per_device_train_batch_size 4 \
    --per_device_eval_batch_size 4 \
    --learning_rate 1e-5 \
    --gradient_accumulation_steps 1 \
    --eval_steps 100 \
    --save_steps 100 \
    --save_total_limit 2 \
    --logging_steps 5 \
    --max_length 2048 \
    --output_dir output/grpo \
    --warmup_ratio 0.05 \
    --dataloader_num_workers 4 \
    --dataset_num_proc 4 \
    --num_generations 4 \
    --temperature 0.9 \
    --system 'examples/train/grpo/prompt.txt' \
    --log_completions true \
    --use_vllm true \
    --vllm_gpu_memory_utilization 0.5 \
    --sleep_level 1 \
    --offload_model true \
    --offload_optimizer true \
    --gc_collect_after_offload true
