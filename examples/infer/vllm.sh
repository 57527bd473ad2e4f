#!/usr/bin/env bash
# Seed 003's accelerated inference: merge the LoRA checkpoint, then chat with vLLM; then batch inference over the
# run's held-out split, every row handed to vLLM at once. Run it with the swift of .venv-vllm
# (scripts/setup_vllm.sh: vLLM's CUDA build on a GPU machine, its CPU build elsewhere):
#   PATH=$PWD/.venv-vllm/bin:$PATH bash examples/infer/vllm.sh output/vx-xxx/checkpoint-xxx
set -euo pipefail
CKPT="${1:?usage: vllm.sh output/vx-xxx/checkpoint-xxx}"
swift infer --adapters "$CKPT" --stream true --merge_lora true --infer_backend vllm --vllm_max_model_len 8192 \
    --temperature 0 --max_new_tokens 2048
swift infer --adapters "$CKPT" --infer_backend vllm --temperature 0 --max_new_tokens 256 --load_data_args true
