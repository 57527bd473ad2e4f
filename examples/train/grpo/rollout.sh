#!/usr/bin/env bash
# GRPO with --vllm_mode server: `swift rollout` generates with vLLM, the trainer pushes its weights to it after
# each step. On GPUs give each its own (CUDA_VISIBLE_DEVICES); on a CPU run it in .venv-vllm (vLLM's CPU build,
# scripts/setup_vllm.sh), where both share the host:
#   PATH=$PWD/.venv-vllm/bin:$PATH bash examples/train/grpo/rollout.sh
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
PORT=${PORT:-8000}
swift rollout --model "$MODEL" --host 127.0.0.1 --port "$PORT" --torch_dtype float32 --vllm_enforce_eager true &
SERVER=$!
trap 'kill "$SERVER"' EXIT
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
    kill -0 "$SERVER"  # stop waiting if the server died
    sleep 2
done
swift rlhf \
    --rlhf_type grpo \
    --model "$MODEL" \
    --reward_funcs accuracy format \
    --train_type lora \
    --dataset examples/train/grpo/data/numina_math.jsonl \
    --max_completion_length "${MAX_COMPLETION_LENGTH:-256}" \
    --per_device_train_batch_size 4 \
    --per_device_eval_batch_size 4 \
    --num_generations 4 \
    --max_steps "${MAX_STEPS:-20}" \
    --logging_steps 5 \
    --system examples/train/grpo/prompt.txt \
    --log_completions true \
    --output_dir output/grpo_rollout \
    --use_vllm true \
    --vllm_mode server \
    --vllm_server_host 127.0.0.1 \
    --vllm_server_port "$PORT"
