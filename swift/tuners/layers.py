"""Find the stack of decoder blocks, for the tuners that work block by block (LLaMA-Pro, adapters, LISA)."""
from torch import nn
from transformers import PreTrainedModel

from ..utils import SwiftError


def decoder_layers(model: PreTrainedModel) -> tuple[nn.Module, str]:
    """The module holding the decoder blocks and the attribute name of their ``ModuleList``."""
    num_layers = model.config.get_text_config().num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            parent, _, attr = name.rpartition('.')
            return model.get_submodule(parent), attr
    raise SwiftError(f'{type(model).__name__}: no list of {num_layers} decoder layers found')
