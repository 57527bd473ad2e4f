#!/usr/bin/env bash
# Install everything, then run the whole test suite: the main environment's tests, then the vLLM ones in
# .venv-vllm (vLLM pins its own transformers; scripts/setup_vllm.sh), which the main run leaves out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers, one per core, a test file each at a time (module fixtures are built once): the tiny models leave
# a core idle otherwise, while one worker waits on a subprocess or a server.
.venv/bin/python -m pytest tests -p no:cacheprovider -n 2 --dist loadfile
bash scripts/setup_vllm.sh
.venv-vllm/bin/python -m pytest tests/vllm -p no:cacheprovider
