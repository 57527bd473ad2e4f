"""The LMDeploy engine's flags (ms-swift's names), for ``--infer_backend lmdeploy``."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from .base_args import check_fraction


@dataclass
class LmdeployArguments:
    lmdeploy_tp: int = field(default=1, metadata={'help': 'GPUs one LMDeploy model is split over.'})
    lmdeploy_session_len: Optional[int] = field(
        default=None, metadata={'help': "LMDeploy's context length; the model's own when unset."})
    lmdeploy_cache_max_entry_count: float = field(
        default=0.8, metadata={'help': 'Share of free GPU memory LMDeploy gives the KV cache.'})
    lmdeploy_quant_policy: int = field(
        default=0, metadata={'help': 'KV cache quantization: 0 none, 4 or 8 bits.'})

    def __post_init__(self):
        if self.lmdeploy_tp < 1:
            raise SwiftError(f'--lmdeploy_tp must be at least 1, got {self.lmdeploy_tp}')
        check_fraction('lmdeploy_cache_max_entry_count', self.lmdeploy_cache_max_entry_count)
        if self.lmdeploy_quant_policy not in (0, 4, 8):
            raise SwiftError(f'--lmdeploy_quant_policy must be 0, 4 or 8, got {self.lmdeploy_quant_policy}')
