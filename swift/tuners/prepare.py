"""Make a model trainable: full fine-tuning, LLaMA-Pro, bottleneck adapters, or an adapter family of peft (LoRA,
DoRA, AdaLoRA, VeRA, BOFT, ...)."""
import copy
import re
import tempfile

import torch
from types import MethodType
from typing import Callable

from peft import PeftConfig, get_peft_model, prepare_model_for_kbit_training, preprocess_loraga
from peft.tuners.tuners_utils import _maybe_include_all_linear_layers
from transformers import PreTrainedModel

from ..utils import SwiftError, get_logger
from .adapter import add_adapters
from .arguments import TunerArguments
from .llamapro import expand_blocks
from .longlora import prepare_longlora
from .multimodal import apply_freeze_flags
from .peft_tuners import PEFT_TUNERS
from .reft import add_interventions

logger = get_logger()
# Runs forward and backward over a few training batches of the model it is given (LoRA-GA's gradient estimate).
GradientStep = Callable[[PreTrainedModel], None]


def prepare_model(model: PreTrainedModel, train_type: str, settings: TunerArguments | None = None,
                  gradient_checkpointing: bool = False, lora_ga_step: GradientStep | None = None,
                  task_type: str = 'causal_lm') -> PreTrainedModel:
    """Return the model to train: ``model`` itself for ``full``, ``llamapro``, ``adapter`` and ``reft`` (changed in
    place), else a peft model of ``train_type`` for the model's ``--task_type``. ``--init_weights lora-ga`` needs
    ``lora_ga_step``."""
    settings = apply_freeze_flags(model, train_type, settings or TunerArguments())
    if train_type == 'full':
        _select_full_parameters(model, settings)
    else:
        if getattr(model, 'is_quantized', False):
            # Norms to float32 and input grads on, so LoRA trains stably over the frozen 4/8-bit weights.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        elif gradient_checkpointing:
            # Frozen embeddings give checkpointed blocks no input that requires grad; this restores the graph.
            model.enable_input_require_grads()
        model = _add_tuner(model, train_type, settings, lora_ga_step, task_type)
    # Under DeepSpeed ZeRO-3 each process holds an empty shard; ds_numel is the full parameter's size.
    trainable = sum(getattr(p, 'ds_numel', p.numel()) for p in model.parameters() if p.requires_grad)
    total = sum(getattr(p, 'ds_numel', p.numel()) for p in model.parameters())
    logger.info(f'{train_type}: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)')
    return model


def _add_tuner(model: PreTrainedModel, train_type: str, settings: TunerArguments, lora_ga_step: GradientStep | None,
               task_type: str):
    if train_type == 'llamapro':
        expand_blocks(model, settings.llamapro_num_new_blocks, settings.llamapro_num_groups)
        return model
    if train_type == 'adapter':
        return add_adapters(model, settings.adapter_length, settings.adapter_act)
    if train_type == 'reft':
        return add_interventions(model, settings.reft_layers, settings.reft_rank, settings.reft_intervention_type,
                                 settings.reft_layer_key, settings.reft_args)
    if train_type == 'longlora':
        return prepare_longlora(model, settings)
    config = PEFT_TUNERS[train_type](settings, task_type)
    if settings.init_weights == 'lora-ga':
        config = _estimate_gradients(model, config, lora_ga_step)
    _no_dropout_on_fused_experts(model, config)
    model = get_peft_model(model, config)
    if settings.lora_dtype:
        _cast_adapter(model, getattr(torch, settings.lora_dtype))
    if settings.init_weights.startswith(('pissa', 'olora', 'lora-ga')):
        _save_as_plain_lora(model)
    return model


def _no_dropout_on_fused_experts(model: PreTrainedModel, config: PeftConfig) -> None:
    """peft moves the expert projections of a fused MoE (transformers 5) to its parameter adapters, which take no
    dropout: LoRA on such a model trains with dropout 0 there, as --target_parameters does, instead of failing."""
    if not getattr(config, 'lora_dropout', 0) or not hasattr(model, 'config'):
        return
    from peft.utils.transformers_weight_conversion import (convert_peft_config_for_transformers,
                                                           get_model_conversion_mapping)
    probe = copy.deepcopy(config)
    convert_peft_config_for_transformers(probe, model=model, conversions=get_model_conversion_mapping(model))
    if getattr(probe, 'target_parameters', None):
        logger.warning(f"--lora_dropout {config.lora_dropout} becomes 0: peft adapts this model's fused experts "
                       'with parameter adapters, which take no dropout')
        config.lora_dropout = 0.0


def _estimate_gradients(model: PreTrainedModel, config: PeftConfig, step: GradientStep | None) -> PeftConfig:
    """LoRA-GA starts each adapter along the top singular directions of the weight's gradient: peft stores a
    gradient estimate on every target layer, which get_peft_model then reads."""
    if step is None:
        raise SwiftError('--init_weights lora-ga needs training batches to estimate the gradients from')
    # peft resolves 'all-linear' only inside get_peft_model, but the estimate must know the layers before it.
    config = _maybe_include_all_linear_layers(config, model)
    preprocess_loraga(model, config, lambda: step(model))
    return config


def _select_full_parameters(model: PreTrainedModel, settings: TunerArguments) -> None:
    """Train every parameter except the frozen ones: named prefixes, then the bottom ``freeze_parameters_ratio``
    of the parameter count; ``trainable_parameters`` (prefixes or regexes) wins over both."""
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    frozen, seen = set(), 0
    for name, param in params:  # named_parameters runs from the embeddings up, so this freezes the bottom
        if seen < settings.freeze_parameters_ratio * total:
            frozen.add(name)
        seen += param.numel()
    frozen |= {name for name, _ in params if name.startswith(tuple(settings.freeze_parameters))}
    if settings.freeze_parameters_regex:
        frozen |= {name for name, _ in params if re.search(settings.freeze_parameters_regex, name)}
    for name, param in params:
        param.requires_grad_(name not in frozen or _matches(name, settings.trainable_parameters)
                             or bool(settings.trainable_parameters_regex
                                     and re.search(settings.trainable_parameters_regex, name)))


def _cast_adapter(model, dtype: torch.dtype) -> None:
    """--lora_dtype: the adapter's own weights (peft names them lora_*) in this dtype; the base keeps its own."""
    for name, param in model.named_parameters():
        if 'lora_' in name:
            param.data = param.data.to(dtype)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name.startswith(pattern) or re.fullmatch(pattern, name) for pattern in patterns)


def _save_as_plain_lora(model) -> None:
    """PiSSA, OLoRA and LoRA-GA move part of each base weight into the adapter, so their adapter only fits the
    mutated base.
    Each save therefore converts it, against the adapter as initialised, into a plain LoRA (of rank 2r) that fits
    the original base: what infer, deploy and export load. Such a checkpoint cannot be resumed."""
    initial = tempfile.TemporaryDirectory(prefix='swift-initial-adapter-')
    model.save_pretrained(initial.name)
    save = model.save_pretrained

    def save_converted(self, save_directory: str, **kwargs) -> None:
        save(save_directory, path_initial_model_for_weight_conversion=initial.name, **kwargs)

    model.save_pretrained = MethodType(save_converted, model)
    model.swift_initial_adapter = initial  # the folder lives as long as the model
