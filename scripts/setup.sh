#!/usr/bin/env bash
# Create .venv with the CPU build of torch first (a bare `torch` requirement would pull a multi-GB CUDA build),
# then swift and its dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c 'import torch' 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then pip install -q torch; else pip install -q torch==2.13.0; fi
fi
pip install -q -e '.[test]'
# The browser tests (tests/ui, tests/app) drive Debian's chromium through playwright; playwright's own browser
# download needs its host, so the system package serves instead (about 45 s to install).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    as_root=$([ "$(id -u)" = 0 ] || echo sudo)
    $as_root apt-get install -y -q chromium || { $as_root apt-get update -q && $as_root apt-get install -y -q chromium; }
fi
# llmcompressor (export --quant_method gptq|awq|fp8) pins transformers<=5.17; it runs on the newer one swift needs,
# so it goes in without its pins (its runtime dependencies come with .[test]; see docs/export.md).
pip install -q --no-deps llmcompressor==0.14.0.1
# EvalScope (swift eval, tests/eval) pins datasets<4.2 through modelscope[datasets]; it runs on the datasets swift
# needs, so it goes in without its pins after its runtime dependencies (docs/eval.md).
pip install -q -e '.[eval]'
pip install -q --no-deps evalscope==1.14.1
