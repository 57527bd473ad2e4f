"""The parts of a multimodal model, for --freeze_llm, --freeze_vit and --freeze_aligner (ms-swift's semantics): full
training freezes the frozen parts' parameters; a tuner on 'all-linear' adapts only the Linear layers of the parts
that are not frozen (by default the language model alone). --vit_lr and --aligner_lr give the parts' trainable
parameters their own learning rates."""
from dataclasses import replace
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel, Trainer, TrainerCallback

from ..utils import SwiftError
from .arguments import TunerArguments

# The module names (last name part) that start each part. The innermost one decides, so a projector that sits inside
# the vision tower (Qwen2-VL's visual.merger) is the aligner; modules under none of them belong to the language model.
PART_MODULES = {
    'vit': ('visual', 'vision_tower', 'vision_model', 'audio_tower'),
    'aligner': ('merger', 'multi_modal_projector', 'mm_projector', 'connector'),
    'llm': ('language_model', 'lm_head'),
}
DEFAULTS = TunerArguments()
FLAGS = ('freeze_llm', 'freeze_vit', 'freeze_aligner')
# swift's own tuners, which hook into the language model's decoder layers whatever the flags say.
LANGUAGE_MODEL_TUNERS = ('llamapro', 'adapter', 'reft')


def apply_freeze_flags(model: PreTrainedModel, train_type: str, settings: TunerArguments) -> TunerArguments:
    """``settings`` with the frozen parts added: to ``freeze_parameters`` for full training, as the exact
    ``target_modules`` for a tuner on 'all-linear'. A text-only model accepts only the defaults."""
    parts = _part_prefixes(model)
    changed = [flag for flag in FLAGS if getattr(settings, flag) != getattr(DEFAULTS, flag)]
    if not parts:
        if changed:
            raise SwiftError(f'--{changed[0]} applies to multimodal models; {type(model).__name__} has no vision '
                             'tower')
        return settings
    if train_type in LANGUAGE_MODEL_TUNERS:
        if changed:
            raise SwiftError(f'--{changed[0]}: --train_type {train_type} adds to the language model\'s decoder '
                             'layers only')
        return settings
    frozen = frozen_parts(model, settings)
    if train_type == 'full':
        names = [name for name, _ in model.named_parameters() if frozen(name)]
        return replace(settings, freeze_parameters=[*settings.freeze_parameters, *names])
    if settings.target_modules != ['all-linear']:
        return settings
    head = model.get_output_embeddings()  # 'all-linear' leaves the output head out, as peft does
    targets = [name for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and module is not head and not frozen(name)]
    if not targets:
        raise SwiftError('--freeze_llm, --freeze_vit and --freeze_aligner leave no Linear layer to adapt')
    return replace(settings, target_modules=targets)


def frozen_parts(model: PreTrainedModel, settings: TunerArguments) -> Callable[[str], bool]:
    """Whether a module or parameter name lies in a part the flags keep frozen; nothing is, in a text model."""
    parts = _part_prefixes(model)
    frozen = {part for part in PART_MODULES if getattr(settings, f'freeze_{part}')}
    return lambda name: bool(parts) and _part_of(name, parts) in frozen


def _part_prefixes(model: PreTrainedModel) -> dict[str, str]:
    """Module name -> part for every module that starts one; empty for a model without a vision or audio part."""
    prefixes = {name: part for name, _ in model.named_modules()
                for part, leaves in PART_MODULES.items() if name.rpartition('.')[2] in leaves}
    return prefixes if set(prefixes.values()) - {'llm'} else {}


def _part_of(name: str, prefixes: dict[str, str]) -> str:
    owners = [prefix for prefix in prefixes if name == prefix or name.startswith(prefix + '.')]
    return prefixes[max(owners, key=len)] if owners else 'llm'


def part_learning_rates_optimizer(model: nn.Module, vit_lr: float | None, aligner_lr: float | None, lr: float,
                                  weight_decay: float, betas: tuple[float, float], eps: float) -> torch.optim.Optimizer:
    """--vit_lr / --aligner_lr (ms-swift's multimodal optimizer): AdamW whose trainable parameters are grouped by
    part (vision tower, aligner, language model) and by weight decay, each part at its own learning rate (unset:
    --learning_rate). The trainer's schedule scales every group alike."""
    parts = _part_prefixes(model)
    if not parts:
        raise SwiftError(f'--vit_lr and --aligner_lr apply to multimodal models; {type(model).__name__} has no '
                         'vision tower')
    rates = {'vit': lr if vit_lr is None else vit_lr, 'aligner': lr if aligner_lr is None else aligner_lr, 'llm': lr}
    decayed = set(Trainer.get_decay_parameter_names(None, model))
    groups = []
    for part, rate in rates.items():
        for decay in (False, True):
            params = [p for name, p in model.named_parameters()
                      if p.requires_grad and _part_of(name, parts) == part and (name in decayed) == decay]
            if params:
                groups.append({'params': params, 'lr': rate, 'weight_decay': weight_decay if decay else 0.0,
                               'part': part})
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def set_vision_checkpointing(model: nn.Module, enabled: bool) -> None:
    """--vit_gradient_checkpointing: the vision tower's and aligner's layers recompute their activations in the
    backward pass (or keep them), whatever --gradient_checkpointing set for the language model."""
    parts = _part_prefixes(model)
    if not parts:
        raise SwiftError(f'--vit_gradient_checkpointing applies to multimodal models; {type(model).__name__} has no '
                         'vision tower')
    for name, module in model.named_modules():
        if hasattr(module, 'gradient_checkpointing') and _part_of(name, parts) in ('vit', 'aligner'):
            module.gradient_checkpointing = enabled
            if enabled and getattr(module, '_gradient_checkpointing_func', None) is None:
                module._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)


class VisionCheckpointingCallback(TrainerCallback):
    """Applies --vit_gradient_checkpointing once the Trainer has set up --gradient_checkpointing (at train start)."""

    def __init__(self, model: nn.Module, enabled: bool):
        self.model, self.enabled = model, enabled

    def on_train_begin(self, args, state, control, **kwargs):
        set_vision_checkpointing(self.model, self.enabled)
