"""LLaMA-Pro (Wu et al., 2024): add copies of decoder blocks whose output projections start at zero, so the model
computes exactly what it did, and train only the copies. The checkpoint is the whole expanded model."""
import copy

from torch import nn
from transformers import PreTrainedModel

from ..utils import SwiftError
from .layers import decoder_layers

# The projections that write a block's result into the residual stream: zeroed, a new block adds nothing at first.
OUTPUT_PROJECTIONS = ('o_proj', 'down_proj')


def expand_blocks(model: PreTrainedModel, num_new_blocks: int, num_groups: int | None = None) -> None:
    """Split the blocks into ``num_groups`` groups and add ``num_new_blocks / num_groups`` copies of each group's
    last block after it; everything else is frozen."""
    parent, attr = decoder_layers(model)
    layers = getattr(parent, attr)
    groups = num_groups or num_new_blocks
    if num_new_blocks <= 0 or num_new_blocks % groups or len(layers) % groups:
        raise SwiftError(f'--llamapro_num_groups {groups} must divide both --llamapro_num_new_blocks '
                         f'{num_new_blocks} and the {len(layers)} layers')
    per_group, new_per_group = len(layers) // groups, num_new_blocks // groups
    expanded, new_blocks = [], []
    for i, layer in enumerate(layers):
        expanded.append(layer)
        if (i + 1) % per_group == 0:
            new_blocks += [_silent_copy(layer) for _ in range(new_per_group)]
            expanded += new_blocks[-new_per_group:]
    setattr(parent, attr, nn.ModuleList(expanded))
    _renumber(model, expanded, per_group, new_per_group)
    model.requires_grad_(False)
    for block in new_blocks:
        block.requires_grad_(True)


def _silent_copy(layer: nn.Module) -> nn.Module:
    block = copy.deepcopy(layer)
    zeroed = [m for name, m in block.named_modules() if name.rpartition('.')[2] in OUTPUT_PROJECTIONS]
    if len(zeroed) != len(OUTPUT_PROJECTIONS):
        raise SwiftError(f'--train_type llamapro needs decoder layers with {" and ".join(OUTPUT_PROJECTIONS)}')
    for module in zeroed:
        nn.init.zeros_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return block


def _renumber(model: PreTrainedModel, layers: list[nn.Module], per_group: int, new_per_group: int) -> None:
    """The config and each attention's ``layer_idx`` (its key/value cache slot) must match the new depth."""
    config = model.config.get_text_config()
    if getattr(config, 'layer_types', None):  # a new block keeps the attention kind of the block it copies
        old = config.layer_types
        config.layer_types = [kind for g in range(0, len(old), per_group)
                              for kind in old[g:g + per_group] + [old[g + per_group - 1]] * new_per_group]
    config.num_hidden_layers = len(layers)
    for idx, layer in enumerate(layers):
        for module in layer.modules():
            if hasattr(module, 'layer_idx'):
                module.layer_idx = idx
