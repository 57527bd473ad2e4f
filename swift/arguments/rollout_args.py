"""Arguments of ``swift rollout``: the vLLM generation server that GRPO's ``--vllm_mode server`` talks to."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from ..utils.errors import check_fraction
from .base_args import ModelArguments
from .deploy_args import check_port


@dataclass
class RolloutArguments(ModelArguments):
    host: str = field(default='0.0.0.0', metadata={'help': 'Address to listen on (GRPO: --vllm_server_host).'})
    port: int = field(default=8000, metadata={'help': 'Port to listen on (GRPO: --vllm_server_port).'})
    vllm_tensor_parallel_size: int = field(default=1, metadata={'help': 'GPUs each model copy is split over.'})
    vllm_data_parallel_size: int = field(default=1, metadata={'help': 'Model copies serving in parallel.'})
    vllm_gpu_memory_utilization: Optional[float] = field(
        default=None, metadata={'help': 'Share of each GPU vLLM may use (default 0.9); on vLLM\'s CPU build, share of '
                                        'host memory for its KV cache (default 0.2).'})
    vllm_max_model_len: Optional[int] = field(default=None, metadata={'help': 'Longest context; default the model\'s.'})
    vllm_enable_prefix_caching: Optional[bool] = field(
        default=None, metadata={'help': "Reuse the KV cache of shared prompt prefixes (default: vLLM's choice)."})
    vllm_enforce_eager: bool = field(default=False, metadata={'help': 'Run vLLM without CUDA graphs.'})

    def __post_init__(self):
        if not self.model:
            raise SwiftError('--model is required: a local folder or a hub id')
        check_port('--port', self.port)
        for name in ('vllm_tensor_parallel_size', 'vllm_data_parallel_size'):
            if getattr(self, name) < 1:
                raise SwiftError(f'--{name} must be at least 1, got {getattr(self, name)}')
        check_fraction('vllm_gpu_memory_utilization', self.vllm_gpu_memory_utilization)
