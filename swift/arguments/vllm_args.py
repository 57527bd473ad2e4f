"""The vLLM engine's flags (ms-swift's names), for ``--infer_backend vllm``."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from .base_args import check_fraction


@dataclass
class VllmArguments:
    vllm_gpu_memory_utilization: Optional[float] = field(
        default=None, metadata={'help': "Share of GPU memory vLLM takes (0.9 when unset); on vLLM's CPU build, the "
                                        'share of host memory it reserves (0.2 when unset).'})
    vllm_tensor_parallel_size: int = field(default=1, metadata={'help': 'GPUs one vLLM model is split over.'})
    vllm_max_num_seqs: int = field(default=256, metadata={'help': 'Most sequences vLLM generates at once.'})
    vllm_max_model_len: Optional[int] = field(
        default=None, metadata={'help': "vLLM's context length; the model's own when unset."})
    vllm_enforce_eager: bool = field(default=False, metadata={'help': 'Run vLLM without CUDA graphs.'})
    vllm_max_lora_rank: int = field(
        default=16, metadata={'help': "Largest LoRA rank vLLM reserves room for; raised to the adapters' own."})
    vllm_enable_prefix_caching: bool = field(default=False, metadata={'help': 'Reuse the KV cache of shared prefixes.'})

    def __post_init__(self):
        check_fraction('vllm_gpu_memory_utilization', self.vllm_gpu_memory_utilization)
        for flag in ('vllm_tensor_parallel_size', 'vllm_max_num_seqs', 'vllm_max_lora_rank'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')
