"""GPTQ, AWQ and FP8 quantization of a loaded model through llm-compressor (``oneshot``).

The model is quantized in place; its ``save_pretrained`` (wrapped by llm-compressor) then writes the
compressed-tensors format, which transformers loads with the ``compressed-tensors`` package installed, and vLLM
serves. ms-swift writes GPTQ through gptqmodel instead, whose wheels need a CUDA build of torch.
"""
import torch
from torch import nn
from transformers import PreTrainedModel

from ..utils import SwiftError

# llmcompressor 0.14 pins transformers<=5.17 and compressed-tensors==0.19, but swift's training arguments need a
# newer transformers; the library runs with transformers 5.23 and compressed-tensors 0.20 (tests/export), so it
# is installed on top of them without its pins.
INSTALL = ("pip install 'swift[quant]' && pip install --no-deps "
           'llmcompressor==0.14.0.1 (without --no-deps pip downgrades transformers to 5.17, on which swift sft does '
           'not run; see docs/export.md)')

# llm-compressor's preset scheme for each method and bit width, as in its own examples: symmetric int weights
# for GPTQ, asymmetric (with a zero point) for AWQ, whose scale search assumes one.
SCHEMES = {('gptq', 4): 'W4A16', ('gptq', 8): 'W8A16', ('awq', 4): 'W4A16_ASYM', ('fp8', 8): 'FP8_DYNAMIC'}

# The output projection stays in full precision, as in llm-compressor's and ms-swift's recipes: the logits are
# what quantization error hurts most.
IGNORE = ['lm_head']
# The group size of llm-compressor's W4A16, W8A16 and W4A16_ASYM schemes.
GROUP_SIZE = 128
# The methods that calibrate on data (and use the integer schemes); FP8 is data-free.
CALIBRATED_METHODS = ('gptq', 'awq')


def quantize_model(model: PreTrainedModel, method: str, bits: int, samples: list[list[int]] | None = None,
                   batch_size: int = 1) -> PreTrainedModel:
    """Quantize ``model`` in place with ``method``; GPTQ and AWQ calibrate on ``samples`` (token id lists)."""
    oneshot = _import_oneshot()
    if method == 'awq' and not torch.accelerator.is_available():
        # llm-compressor 0.14's AWQ pins its cached activations in page-locked memory, which torch only
        # allows with an accelerator: on a CPU it stops with "Cannot access accelerator device".
        raise SwiftError('--quant_method awq needs a GPU (llm-compressor pins AWQ calibration activations for '
                         'one); on a CPU, --quant_method gptq or fp8 quantize')
    calibration = {}
    if method in CALIBRATED_METHODS:
        _check_group_size(model, method)
        calibration = _calibration_kwargs(samples, batch_size)
    # shuffle off: the rows are already the sample the user asked for (--dataset name#N, --quant_n_samples).
    oneshot(model=model, recipe=_recipe(method, bits), shuffle_calibration_samples=False, **calibration)
    return model


def _check_group_size(model: PreTrainedModel, method: str) -> None:
    """The int schemes quantize each row in groups of GROUP_SIZE inputs: every quantized layer's width must divide."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.rpartition('.')[2] not in IGNORE and module.in_features % GROUP_SIZE:
            raise SwiftError(f'--quant_method {method} quantizes weights in groups of {GROUP_SIZE} inputs, but {name} '
                             f'has {module.in_features}; --quant_method fp8 has no such limit')


def _import_oneshot():
    try:
        from llmcompressor import oneshot
    except ImportError as err:
        raise SwiftError(f'--quant_method gptq/awq/fp8 needs llmcompressor ({err}): {INSTALL}') from None
    return oneshot


def _recipe(method: str, bits: int):
    """The llm-compressor modifier that applies ``method``: GPTQ and AWQ calibrate, FP8 is data-free."""
    from llmcompressor.modifiers.awq import AWQModifier
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    modifier = {'gptq': GPTQModifier, 'awq': AWQModifier, 'fp8': QuantizationModifier}[method]
    return modifier(targets='Linear', scheme=SCHEMES[method, bits], ignore=IGNORE)


def _calibration_kwargs(samples: list[list[int]] | None, batch_size: int) -> dict:
    """oneshot's data arguments for already-tokenized calibration rows (no second tokenization there)."""
    from datasets import Dataset
    if not samples:
        raise SwiftError('no calibration rows left: every --dataset row was empty or longer than --max_length')
    rows = [{'input_ids': ids, 'attention_mask': [1] * len(ids)} for ids in samples]
    return {'dataset': Dataset.from_list(rows), 'num_calibration_samples': len(rows), 'batch_size': batch_size,
            'max_seq_length': max(len(ids) for ids in samples)}
