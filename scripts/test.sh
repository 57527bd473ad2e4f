#!/usr/bin/env bash
# Install everything, then run the whole test suite: the main environment's tests, then the vLLM ones in
# .venv-vllm (vLLM pins its own transformers; scripts/setup_vllm.sh), which the main run leaves out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest tests -p no:cacheprovider
bash scripts/setup_vllm.sh
.venv-vllm/bin/python -m pytest tests/vllm -p no:cacheprovider
