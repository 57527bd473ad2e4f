#!/usr/bin/env bash
# The GPU check of issue 17: one call of the device tool runs it, at most 8 minutes, and prints one table.
#
#   bash tests/gpu/run.sh
#
# Rows: bf16 SFT of a 0.5B-shaped model with its MFU (flash-attn when installed), QLoRA memory, vLLM colocated GRPO
# with sleep mode and the offload flags, NCCL DDP (two GPUs), DeepSpeed ZeRO-2/3, FSDP2, and every test of the suite
# that skips without a GPU (SGLang and LMDeploy against the pt engine's answers among them): tests/gpu/checks.py.
# Without a GPU it is a dry run: every row says 'skipped: no GPU' and it exits 0.
# Packages the GPU image lacks travel as wheels in .whl/ (see /work/.library/device/README.md); they are installed
# first. A row 'skipped: X not installed' names the one to carry.
set -u
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ls .whl/*.whl >/dev/null 2>&1 && "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/swift_site \
        .whl/*.whl && export PYTHONPATH="/tmp/swift_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec timeout 480 "$PYTHON" tests/gpu/checks.py "$@"
