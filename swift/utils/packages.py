"""Which optional engines this machine can run."""
import importlib.util

import torch


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None when it can: it needs its package and a CUDA GPU."""
    if importlib.util.find_spec('vllm') is None:
        return 'vLLM is not installed (pip install vllm; it needs a CUDA GPU)'
    if not torch.cuda.is_available():
        return 'vLLM needs a CUDA GPU and none is visible'
    return None
