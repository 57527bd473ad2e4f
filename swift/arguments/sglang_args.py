"""The SGLang engine's flags (ms-swift's names), for ``--infer_backend sglang``."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from .base_args import check_fraction


@dataclass
class SglangArguments:
    sglang_tp_size: int = field(default=1, metadata={'help': 'GPUs one SGLang model is split over (tensor parallel).'})
    sglang_pp_size: int = field(default=1, metadata={'help': 'SGLang pipeline-parallel stages.'})
    sglang_dp_size: int = field(default=1, metadata={'help': 'SGLang data-parallel replicas of the model.'})
    sglang_ep_size: int = field(default=1, metadata={'help': 'SGLang expert-parallel size (MoE models).'})
    sglang_mem_fraction_static: Optional[float] = field(
        default=None, metadata={'help': "Share of GPU memory for weights and KV cache; SGLang's choice when unset."})
    sglang_context_length: Optional[int] = field(
        default=None, metadata={'help': "SGLang's context length; the model's own when unset."})
    sglang_disable_cuda_graph: bool = field(default=False, metadata={'help': 'Run SGLang without CUDA graphs.'})
    sglang_quantization: Optional[str] = field(
        default=None, metadata={'help': "SGLang's quantization method, e.g. fp8 or awq."})
    sglang_kv_cache_dtype: str = field(default='auto', metadata={'help': 'KV cache dtype, e.g. fp8_e5m2.'})
    sglang_enable_dp_attention: bool = field(default=False, metadata={'help': 'Data-parallel attention.'})
    sglang_disable_custom_all_reduce: bool = field(
        default=True, metadata={'help': "Use NCCL instead of SGLang's custom all-reduce kernel."})

    def __post_init__(self):
        check_fraction('sglang_mem_fraction_static', self.sglang_mem_fraction_static)
        for flag in ('sglang_tp_size', 'sglang_pp_size', 'sglang_dp_size', 'sglang_ep_size'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')
