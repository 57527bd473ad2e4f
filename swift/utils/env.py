"""The only module that reads environment variables. Each one is documented here.

- ``NPROC_PER_NODE``: processes per node; when set, ``swift sft`` and ``swift pt`` relaunch under torchrun.
- ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``: multi-node torchrun settings.
- ``LOCAL_RANK``: set by torchrun inside each worker; tells a worker from the launching command.
- ``WORLD_SIZE``: set by torchrun inside each worker: the number of processes in the run (1 without torchrun).
- ``HF_HUB_OFFLINE``: when ``1``, hub downloads are not attempted at all.
"""
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, '') else default


def nproc_per_node() -> int | None:
    value = os.environ.get('NPROC_PER_NODE')
    return int(value) if value else None


def torchrun_settings() -> dict:
    """Multi-node settings for torchrun, from the variables users already know from ms-swift."""
    return {
        'nnodes': _int('NNODES', 1),
        'node_rank': _int('NODE_RANK', 0),
        'master_addr': os.environ.get('MASTER_ADDR', '127.0.0.1'),
        'master_port': _int('MASTER_PORT', 29500),
    }


def local_rank() -> int:
    return _int('LOCAL_RANK', -1)


def world_size() -> int:
    return _int('WORLD_SIZE', 1)


def is_distributed_worker() -> bool:
    return local_rank() >= 0


def hub_offline() -> bool:
    return os.environ.get('HF_HUB_OFFLINE', '0').lower() in ('1', 'true', 'yes')
