"""Quantized loading for QLoRA: bitsandbytes 4-bit NF4 (or 8-bit) through transformers' BitsAndBytesConfig."""

import torch
from transformers import BitsAndBytesConfig

from ..utils import SwiftError
from ..utils.packages import require_extra

_COMPUTE_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def bnb_config(quant_bits: int, quant_type: str = 'nf4', double_quant: bool = True,
               compute_dtype: str | None = None) -> BitsAndBytesConfig:
    """The config that loads a model in ``quant_bits`` with bitsandbytes; compute defaults to float32 on a CPU."""
    require_extra('bitsandbytes', 'qlora', '--quant_method bnb (QLoRA)')
    if quant_bits not in (4, 8):
        raise SwiftError(f'--quant_bits must be 4 or 8 for bnb, got {quant_bits}')
    if quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    default = 'bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else 'float32'
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=_COMPUTE_DTYPES[compute_dtype or default])
