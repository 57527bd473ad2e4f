"""Arguments of ``swift deploy``: the inference arguments plus the HTTP server's."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from .infer_args import InferArguments


@dataclass
class DeployArguments(InferArguments):
    """``--adapters`` takes bare paths, applied to the served model as ``swift infer`` does, and ``name=path``
    entries, each served as a model of its own next to the base (multi-LoRA)."""
    host: str = field(
        default='127.0.0.1', metadata={'help': 'Address to listen on; 0.0.0.0 opens the server to the network (set '
                                                '--api_key then).'})
    port: int = field(default=8000, metadata={'help': 'Port to listen on.'})
    api_key: Optional[str] = field(
        default=None, metadata={'help': "When set, requests must send 'Authorization: Bearer <api_key>'."})
    served_model_name: Optional[str] = field(
        default=None, metadata={'help': 'Name clients use for the base model; default: the model folder name.'})
    max_batch_size: int = field(default=8, metadata={'help': 'Requests generated together in one batch.'})
    log_interval: float = field(
        default=20, metadata={'help': 'Seconds between throughput log lines; 0 or less turns them off.'})
    owned_by: str = field(default='swift', metadata={'help': "The owned_by field of /v1/models' entries."})
    verbose: bool = field(default=True, metadata={'help': 'Log each request and its whole (not streamed) response.'})
    max_logprobs: int = field(
        default=20, metadata={'help': 'Most top log-probabilities a request may ask for; more is a 400.'})
    adapter_mapping: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self):
        InferArguments.__post_init__(self)
        check_port('--port', self.port)
        if self.max_logprobs < 0:
            raise SwiftError(f'--max_logprobs must be at least 0, got {self.max_logprobs}')
        bare = []
        for entry in self.adapters:
            name, sep, path = entry.partition('=')
            if not sep:
                bare.append(entry)
            elif not name or not path:
                raise SwiftError(f"--adapters entry {entry!r} must be 'name=path'")
            elif name in self.adapter_mapping:
                raise SwiftError(f'--adapters names {name!r} twice')
            else:
                self.adapter_mapping[name] = path
        self.adapters = bare

    @property
    def adapter_paths(self) -> list[str]:
        """Bare adapters first, then the named ones: the first of them describes the run."""
        return [*self.adapters, *self.adapter_mapping.values()]


def check_port(flag: str, port: int) -> None:
    if not 0 < port < 65536:
        raise SwiftError(f'{flag} must be in 1..65535, got {port}')
