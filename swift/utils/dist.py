"""Helpers for runs under torchrun."""
from typing import TypeVar

import torch.distributed as dist

T = TypeVar('T')


def broadcast_from_main(value: T) -> T:
    """Every process gets the main process's ``value`` (e.g. the run folder it picked)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
