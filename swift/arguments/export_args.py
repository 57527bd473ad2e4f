"""Arguments of ``swift export``."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError
from .base_args import BaseArguments


# Bit widths of the methods that quantize a loaded model through llm-compressor (swift/export/quantize.py).
LIBRARY_QUANT_BITS = {'gptq': (4, 8), 'awq': (4,), 'fp8': (8,)}


@dataclass
class ExportArguments(BaseArguments):
    merge_lora: bool = field(default=False, metadata={'help': 'Merge --adapters into the base: writes CKPT-merged/.'})
    output_dir: Optional[str] = field(default=None, metadata={'help': 'Where to write; default CKPT-merged.'})
    exist_ok: bool = field(
        default=False, metadata={'help': 'Replace an existing --output_dir (merged or quantized model) instead of '
                                         'refusing.'})
    to_ollama: bool = field(default=False, metadata={'help': 'Write an Ollama Modelfile to --output_dir.'})
    quant_method: Optional[Literal['bnb', 'gptq', 'awq', 'fp8']] = field(
        default=None, metadata={'help': 'With --model: write a quantized copy. bnb = bitsandbytes (--quant_bits 4|8); '
                                        'gptq (4|8) and awq (4, GPU only) calibrate on --dataset; fp8 needs no data. '
                                        'gptq, awq and fp8 need llmcompressor, see docs/export.md.'})
    quant_n_samples: int = field(
        default=256, metadata={'help': 'gptq/awq: calibration rows taken from --dataset, encoded by the template; '
                                       'without --max_length each is cut at 2048 tokens.'})
    quant_batch_size: int = field(
        default=1, metadata={'help': 'gptq/awq: calibration rows per forward pass; rows in a batch are cut to the '
                                     'shortest.'})
    push_to_hub: bool = field(default=False, metadata={'help': 'Upload the checkpoint to a hub.'})
    hub_model_id: Optional[str] = field(default=None, metadata={'help': "'<namespace>/<name>' on the hub."})
    hub_private_repo: bool = field(default=False, metadata={'help': 'Create the hub repository as private.'})
    commit_message: str = field(default='update files', metadata={'help': 'Commit message of the upload.'})
    to_cached_dataset: bool = field(
        default=False, metadata={'help': 'Encode --dataset once and save the rows (train/ and val/ under --output_dir, '
                                         'default MODEL-cached_dataset) for swift sft --cached_dataset.'})
    template_mode: Literal['train', 'rlhf', 'kto'] = field(
        default='train', metadata={'help': 'With --to_cached_dataset, which rows: train (swift pt/sft), rlhf (preference '
                                           'pairs: dpo, orpo, cpo, simpo) or kto.'})

    def __post_init__(self):
        BaseArguments.__post_init__(self)
        if not self.model and not self.adapters:
            raise SwiftError('give --model or --adapters')
        if self.merge_lora and not self.adapters:
            raise SwiftError('--merge_lora true needs --adapters CKPT')
        if self.quantize and self.quant_method is None:
            self.quant_method = 'bnb'
        if self.quant_method in LIBRARY_QUANT_BITS:
            self._check_library_quant()
        if self.to_ollama and self.quantize:
            raise SwiftError('Ollama does not import bitsandbytes, GPTQ, AWQ or FP8 weights: drop --quant_bits and '
                             'quantize with `ollama create --quantize q4_K_M`')
        if self.to_ollama and self.adapters and not self.merge_lora:
            raise SwiftError('--to_ollama true with --adapters needs --merge_lora true: Ollama imports a whole model')
        if self.to_cached_dataset:
            self._check_cached_dataset()
        if self.push_to_hub and not self.hub_model_id:
            raise SwiftError('--push_to_hub true needs --hub_model_id <namespace>/<name>')

    def _check_cached_dataset(self) -> None:
        if self.packing:
            raise SwiftError('--packing: cached rows are packed while training (swift sft --cached_dataset DIR '
                             '--packing true), not here')
        if self.merge_lora or self.quantize or self.to_ollama:
            raise SwiftError('--to_cached_dataset true writes data only: run --merge_lora, --quant_method and '
                             '--to_ollama in another swift export')

    def _check_library_quant(self) -> None:
        """gptq/awq/fp8 quantize --model after loading it: bits the method has, and data for the calibrated ones."""
        method, choices = self.quant_method, LIBRARY_QUANT_BITS[self.quant_method]
        if self.quant_bits is None and len(choices) == 1:
            self.quant_bits = choices[0]  # fp8 is 8 bits and awq 4: nothing to choose
        bits = '|'.join(map(str, choices))
        if self.quant_bits is None:
            raise SwiftError(f'--quant_method {method} needs --quant_bits {bits}')
        if self.quant_bits not in choices:
            raise SwiftError(f'--quant_method {method} takes --quant_bits {bits}, got {self.quant_bits}')
        if self.adapters:
            raise SwiftError(f'--quant_method {method} quantizes a whole model: merge first (--merge_lora true), '
                             f'then export --model CKPT-merged --quant_method {method}')
        if method != 'fp8' and not self.dataset:
            raise SwiftError(f'--quant_method {method} calibrates on data: give --dataset (e.g. a jsonl of chat '
                             'rows; --quant_n_samples rows are used)')
        if self.quant_n_samples <= 0 or self.quant_batch_size <= 0:
            raise SwiftError('--quant_n_samples and --quant_batch_size must be positive')

    @property
    def quantize(self) -> bool:
        """Write a quantized copy of --model: not the quantization a QLoRA checkpoint records for its base."""
        return self.quantized and not self.adapters
