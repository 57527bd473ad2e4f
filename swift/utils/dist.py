"""Helpers for runs under torchrun."""
import socket
from typing import TypeVar

import torch.distributed as dist

from .env import is_distributed_worker, set_single_process_rank

T = TypeVar('T')


def broadcast_from_main(value: T) -> T:
    """Every process gets the main process's ``value`` (e.g. the run folder it picked)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def skip_deepspeed_cpu_kernel() -> None:
    """On a CPU, DeepSpeed compiles a shared-memory kernel when its process group starts (minutes on first use, in
    every new environment); it only speeds up inference all-reduce, which training never calls. Call before
    transformers' arguments set DeepSpeed up."""
    import importlib
    import torch
    if not torch.cuda.is_available():
        # by module path: the attribute deepspeed.comm.torch is the torch package itself
        importlib.import_module('deepspeed.comm.torch').build_shm_op = lambda: None


def init_deepspeed_comm() -> None:
    """DeepSpeed's own view of the process group, before the model loads: ZeRO-3 partitions weights as they are
    created and reads the world size from it. On a CPU it runs over gloo (oneCCL is not needed)."""
    import deepspeed
    import torch
    if not is_distributed_worker():  # one process, no launcher: DeepSpeed still reads torchrun's variables
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            set_single_process_rank(probe.getsockname()[1])
    deepspeed.init_distributed(dist_backend='nccl' if torch.cuda.is_available() else 'gloo', verbose=False)
