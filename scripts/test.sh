#!/usr/bin/env bash
# Install everything, then run the whole test suite: the main environment's tests, and the vLLM ones in .venv-vllm
# (vLLM pins its own transformers; scripts/setup_vllm.sh), which the main run leaves out.
#
# The main suite runs on two pytest-xdist workers, a test file each at a time (module fixtures are built once), one
# per core. The vLLM tests run beside it at a lower priority: they fill the time a main worker waits on a server or a
# subprocess, and the machine's spare capacity once the main run's last files finish. Their log is printed after it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_vllm.sh
vllm_log=$(mktemp)
vllm_tmp=$(mktemp -d)  # its own pytest temp folder: two pytest sessions at once must not share one
nice -n 5 .venv-vllm/bin/python -m pytest tests/vllm -p no:cacheprovider --durations=10 --basetemp "$vllm_tmp/t" \
    >"$vllm_log" 2>&1 &
vllm_pid=$!
main_status=0
.venv/bin/python -m pytest tests -p no:cacheprovider -n 2 --dist loadfile --durations=25 || main_status=$?
vllm_status=0
wait "$vllm_pid" || vllm_status=$?
echo "==== tests/vllm (in .venv-vllm) ===="
cat "$vllm_log"
rm -rf "$vllm_log" "$vllm_tmp"
echo "main suite: exit $main_status; tests/vllm: exit $vllm_status"
[ "$main_status" -eq 0 ] && [ "$vllm_status" -eq 0 ]
