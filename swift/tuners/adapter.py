"""Bottleneck adapters (Houlsby et al., 2019) after each decoder block's MLP: ``h + up(act(down(h)))`` with ``up``
starting at zero, so the model is unchanged until trained. peft has no such tuner, so swift saves and loads it:
``model.safetensors`` (the adapter weights only) and an ``adapter_config.json`` with ``swift_type``. The saving and
loading helpers here serve swift's other hook-based tuner too (ReFT)."""
import json
import os
from functools import partial
from types import MethodType
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN

from ..utils import SwiftError
from .layers import decoder_layers

SWIFT_TYPE = 'bottleneck_adapter'
# model.safetensors is the file transformers' Trainer loads, non-strictly, into the model when resuming.
WEIGHTS_NAME, CONFIG_NAME = 'model.safetensors', 'adapter_config.json'


class BottleneckAdapter(nn.Module):

    def __init__(self, hidden_size: int, length: int, act: str):
        super().__init__()
        self.down = nn.Linear(hidden_size, length)
        self.act = ACT2FN[act]
        self.up = nn.Linear(length, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


def _is_adapter(name: str) -> bool:
    return '.adapter.' in name


def _after_mlp(mlp: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return mlp.adapter(output)


def add_adapters(model: PreTrainedModel, length: int, act: str) -> PreTrainedModel:
    """Freeze the model and put a trainable adapter after every block's MLP."""
    if act not in ACT2FN:
        raise SwiftError(f"--adapter_act {act}: choose one of {', '.join(sorted(ACT2FN))}")
    parent, attr = decoder_layers(model)
    model.requires_grad_(False)
    hidden = model.config.get_text_config().hidden_size
    for layer in getattr(parent, attr):
        if not hasattr(layer, 'mlp'):
            raise SwiftError('--train_type adapter needs decoder layers with an .mlp module')
        weight = next(layer.mlp.parameters())
        # Registered as a child of the MLP, so the base weights keep their names and only adapter.* are new.
        layer.mlp.adapter = BottleneckAdapter(hidden, length, act).to(weight.device, weight.dtype)
        layer.mlp.register_forward_hook(_after_mlp)
    save_only_tuner(model, {'swift_type': SWIFT_TYPE, 'adapter_length': length, 'adapter_act': act}, _is_adapter)
    return model


def save_only_tuner(model: PreTrainedModel, config: dict, is_tuner: Callable[[str], bool]) -> None:
    """Make ``save_pretrained`` (which the Trainer calls for checkpoints) write only the tuner's weights, those
    whose names ``is_tuner`` accepts, and ``config``."""
    model.swift_adapter_config = config
    model.save_pretrained = MethodType(partial(_save_tuner, is_tuner=is_tuner), model)
    # What a resumed Trainer finds missing from the checkpoint, expectedly: it then warns of nothing.
    model._keys_to_ignore_on_save = [name for name in model.state_dict() if not is_tuner(name)]


def _save_tuner(model: PreTrainedModel, save_directory: str, is_main_process: bool = True, *,
                is_tuner: Callable[[str], bool], **kwargs) -> None:
    if not is_main_process:
        return
    os.makedirs(save_directory, exist_ok=True)
    weights = {name: t.contiguous() for name, t in model.state_dict().items() if is_tuner(name)}
    save_file(weights, os.path.join(save_directory, WEIGHTS_NAME), metadata={'format': 'pt'})
    with open(os.path.join(save_directory, CONFIG_NAME), 'w', encoding='utf-8') as f:
        json.dump(model.swift_adapter_config, f, indent=2)


def swift_config(checkpoint_dir: str) -> dict:
    """The ``adapter_config.json`` of a checkpoint of swift's own tuners; {} for any other (peft's has no
    ``swift_type``)."""
    path = os.path.join(checkpoint_dir, CONFIG_NAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        config = json.load(f)
    return config if 'swift_type' in config else {}


def load_tuner_weights(model: PreTrainedModel, checkpoint_dir: str, is_tuner: Callable[[str], bool],
                       is_trainable: bool) -> PreTrainedModel:
    """Fill the freshly added tuner of ``model`` from the checkpoint; only the tuner trains, if anything."""
    weights = load_file(os.path.join(checkpoint_dir, WEIGHTS_NAME))
    missing = {name for name in model.state_dict() if is_tuner(name)} - set(weights)
    if missing:
        raise SwiftError(f'{checkpoint_dir}: the checkpoint does not fit this model ({len(missing)} weights missing)')
    model.load_state_dict(weights, strict=False)
    for name, param in model.named_parameters():
        param.requires_grad_(is_trainable and is_tuner(name))
    return model if is_trainable else model.eval()


def load_adapters(model: PreTrainedModel, checkpoint_dir: str, is_trainable: bool = False) -> PreTrainedModel:
    config = swift_config(checkpoint_dir)
    model = add_adapters(model, config['adapter_length'], config['adapter_act'])
    return load_tuner_weights(model, checkpoint_dir, _is_adapter, is_trainable)
