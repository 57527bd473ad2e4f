"""Arguments of ``swift export``."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError
from .base_args import BaseArguments


# Quantization methods of ms-swift's export that need a GPU and a package of their own.
GPU_QUANT_METHODS = {'gptq': 'the gptqmodel package', 'awq': 'the llmcompressor package',
                     'fp8': 'the llmcompressor package'}


@dataclass
class ExportArguments(BaseArguments):
    merge_lora: bool = field(default=False, metadata={'help': 'Merge --adapters into the base: writes CKPT-merged/.'})
    output_dir: Optional[str] = field(default=None, metadata={'help': 'Where to write; default CKPT-merged.'})
    to_ollama: bool = field(default=False, metadata={'help': 'Write an Ollama Modelfile to --output_dir.'})
    quant_method: Optional[Literal['bnb', 'gptq', 'awq', 'fp8']] = field(
        default=None, metadata={'help': 'With --model and --quant_bits: write a quantized copy (bnb here; gptq, awq '
                                        'and fp8 need their packages and a GPU).'})
    push_to_hub: bool = field(default=False, metadata={'help': 'Upload the checkpoint to a hub.'})
    hub_model_id: Optional[str] = field(default=None, metadata={'help': "'<namespace>/<name>' on the hub."})
    hub_private_repo: bool = False
    commit_message: str = 'update files'

    def __post_init__(self):
        BaseArguments.__post_init__(self)
        if not self.model and not self.adapters:
            raise SwiftError('give --model or --adapters')
        if self.merge_lora and not self.adapters:
            raise SwiftError('--merge_lora true needs --adapters CKPT')
        if self.quantize and self.quant_method is None:
            self.quant_method = 'bnb'
        if self.quant_method in GPU_QUANT_METHODS:
            raise SwiftError(f'--quant_method {self.quant_method} needs {GPU_QUANT_METHODS[self.quant_method]} and a '
                             'GPU, which this build does not drive; --quant_method bnb quantizes here')
        if self.to_ollama and self.quantize:
            raise SwiftError('Ollama does not import bitsandbytes weights: drop --quant_bits and quantize with '
                             '`ollama create --quantize q4_K_M`')
        if self.to_ollama and self.adapters and not self.merge_lora:
            raise SwiftError('--to_ollama true with --adapters needs --merge_lora true: Ollama imports a whole model')
        if self.push_to_hub and not self.hub_model_id:
            raise SwiftError('--push_to_hub true needs --hub_model_id <namespace>/<name>')

    @property
    def quantize(self) -> bool:
        """Write a quantized copy of --model: not the quantization a QLoRA checkpoint records for its base."""
        return self.quantized and not self.adapters
