"""The memory vLLM generates in. ``--offload_model`` and ``--offload_optimizer``: while a colocated vLLM engine
generates, the training weights and the optimizer state wait in CPU memory, so the GPU's memory goes to vLLM's KV
cache; both come back before the completions are scored. ``--gc_collect_after_offload`` also runs Python's garbage
collector, freeing tensors that only reference cycles still held, before the CUDA cache is emptied. On a CPU there
is nothing to free: no-ops."""
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn


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
