"""Shared fixtures: tiny models built offline once per session, and helpers to run the real CLI."""
import hashlib
import importlib.util
import os
import subprocess
import sys

import pytest

os.environ['HF_HUB_OFFLINE'] = '1'
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

# tests/vllm need vLLM, which pins its own transformers: scripts/test.sh runs them in .venv-vllm
# (scripts/setup_vllm.sh), and the main environment, which has no vLLM, leaves them out.
collect_ignore = [] if importlib.util.find_spec('vllm') else ['vllm']

# The tiny models are too small for intra-op threads to pay: on 2 cores two test workers (scripts/test.sh runs
# pytest-xdist) with a thread each beat one worker with two, and threads that contend made a training fixture ten
# times slower. Subprocesses inherit the variable. vLLM's CPU kernels want their threads, so .venv-vllm keeps them.
if not importlib.util.find_spec('vllm'):
    os.environ.setdefault('OMP_NUM_THREADS', '1')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = os.path.join(os.path.dirname(REPO), 'shared', 'conformance', 'ms-swift-test-data')


@pytest.fixture(autouse=True)
def _work_in_a_scratch_folder(tmp_path_factory, monkeypatch):
    """Commands write some results under the current folder (``result/``, as ms-swift): never into the repo."""
    monkeypatch.chdir(tmp_path_factory.mktemp('cwd'))


def _build(tmp_path_factory, family: str) -> str:
    from swift.utils.tiny_models import build_tiny_model
    return build_tiny_model(str(tmp_path_factory.mktemp(family)), family)


@pytest.fixture(scope='session')
def qwen2_dir(tmp_path_factory) -> str:
    return _build(tmp_path_factory, 'qwen2')


@pytest.fixture(scope='session')
def llama_dir(tmp_path_factory) -> str:
    return _build(tmp_path_factory, 'llama')


@pytest.fixture(scope='session')
def qwen3_dir(tmp_path_factory) -> str:
    return _build(tmp_path_factory, 'qwen3')


@pytest.fixture(scope='session')
def zephyr_dir(tmp_path_factory) -> str:
    """A family swift has no template for: its tokenizer's chat template is used."""
    return _build(tmp_path_factory, 'mistral')


@pytest.fixture(scope='session')
def base_dir(tmp_path_factory) -> str:
    """A base model: no chat template at all."""
    return _build(tmp_path_factory, 'qwen2-base')


@pytest.fixture(scope='session')
def conformance_dir() -> str:
    if not os.path.isdir(CONFORMANCE):
        pytest.fail(f'conformance data missing at {CONFORMANCE}')
    return CONFORMANCE


def run_swift(*argv: str, env: dict | None = None, input: str | None = None, cwd: str | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real ``swift`` command line in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, '-m', 'swift.cli.main', *argv], capture_output=True, text=True,
                          env=full_env, input=input, cwd=cwd, timeout=timeout)


def folder_hashes(folder) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with its SHA-256: equal before and after a command means the
    command added, changed and removed nothing there."""
    hashes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


@pytest.fixture(scope='session')
def qwen2_5_vl_dir(tmp_path_factory) -> str:
    """A tiny Qwen2.5-VL: a 2-block vision tower, random weights, the image processor's config saved beside. Text
    width 128: at 64 the colour toy task needs twice the steps to learn."""
    from swift.utils.tiny_models import build_tiny_model
    return build_tiny_model(str(tmp_path_factory.mktemp('qwen2_5_vl')), 'qwen2_5_vl', hidden_size=128)
