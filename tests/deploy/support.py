"""Helpers for tests that start a real server: a free port, and a LoRA adapter that changes the tiny model's answers."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_adapter(base_dir: str, out_dir: str, seed: int) -> str:
    """A LoRA checkpoint with random weights: the bare tiny model answers newlines only, which would test little."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(r=4, target_modules='all-linear'))
    for name, param in model.named_parameters():
        if 'lora_B' in name:  # peft starts B at zero, which would leave the answers unchanged
            torch.nn.init.normal_(param, std=1.0)
    model.save_pretrained(out_dir)
    return out_dir


@contextmanager
def running_swift(argv: list[str], ready_url: str, log_path: str, env: dict | None = None,
                  timeout: float = 300) -> Iterator[subprocess.Popen]:
    """``swift <argv>`` in a subprocess, its output in ``log_path``, for the block once ``ready_url`` answers;
    stopped with SIGTERM, as a service manager stops it."""
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, '-m', 'swift.cli.main', *argv], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, 'HF_HUB_OFFLINE': '1', **(env or {})})
    try:
        wait_until_up(ready_url, proc, log_path, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_up(url: str, proc: subprocess.Popen, log_path: str, timeout: float = 300) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log when it exits or takes too long (a hang guard:
    generous, as the suite runs two workers and the vLLM tests at once)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f'the server exited with {proc.returncode}:\n{open(log_path).read()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f'the server did not come up:\n{open(log_path).read()[-3000:]}')


def make_reward_model(base_dir: str, out_dir: str, seed: int = 0) -> str:
    """A reward model saved with its scoring head, so that every load of it gives the same scores."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1).save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on a free port, served in a thread of this process as swift eval serves (serve_app_in_thread), for
    the block; yields the base URL without /v1."""
    from swift.pipelines.deploy import serve_app_in_thread
    with serve_app_in_thread(app, '127.0.0.1', free_port()) as url:
        yield url.removesuffix('/v1')
