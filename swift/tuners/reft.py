"""ReFT (Wu et al., 2024, "Representation Finetuning"): a trainable low-rank edit of the hidden state that chosen
decoder layers output, the base model frozen.

- LoReFT: ``h + R^T (W h + b - R h)``, where R (rank x hidden) has orthonormal rows, kept so by a torch
  parametrization (as in pyreft), here the QR factorisation of an unconstrained matrix. Not
  ``torch.nn.utils.parametrizations.orthogonal``: its Householder map reads each reflector's sign from the
  parameter's diagonal by an integer cast, so weight decay (0.1 by default) turns R into zero after one step, and
  its other maps keep a hidden x hidden buffer per layer, which would dwarf the intervention in every checkpoint;
- NoReFT: the same with a plain linear projection (and optional bias) in place of R.

W and b start at R and 0, so with the default linear ``act_fn`` the edit is zero and the model unchanged until
trained (pyreft starts W at random); another ``act_fn`` edits from the start (act(Rh) - Rh).

Positions: the paper edits a window of prompt positions (its first and last few tokens); swift edits every
position, prompt and answer alike. With a KV cache each decoding step then computes for its token exactly what a full
forward computes at that position, so training, a plain forward and cached generation agree, and a checkpoint needs
no position settings. A window would need the prompt's extent (with its padding) in every forward, the trainer's
batches and each decoding step of the engines alike, and neither a model's forward nor ``generate`` carries it.

``pip install pyreft`` would downgrade transformers to 4.45 (through pyvene), so this is written here: forward hooks on
the decoder layers, saved like the bottleneck adapters (``model.safetensors`` with the interventions only and an
``adapter_config.json`` with ``"swift_type": "reft"``). Nothing can be merged: the edit acts on the residual stream
itself, which no weight of the model holds."""
import torch
from torch import nn
from torch.nn.utils.parametrize import register_parametrization
from transformers import PreTrainedModel
from transformers.activations import ACT2FN

from ..utils import SwiftError
from .adapter import load_tuner_weights, save_only_tuner, swift_config
from .layers import decoder_layers

SWIFT_TYPE = 'reft'
# The intervention types of ms-swift (from pyreft) implemented here: whether the projection is kept orthonormal.
INTERVENTIONS = {'LoreftIntervention': True, 'NoreftIntervention': False}
# The --reft_args keys understood, with their defaults (pyreft's intervention keyword arguments).
DEFAULT_ARGS = {'dropout': 0.0, 'act_fn': 'linear', 'add_bias': False}


class Orthonormal(nn.Module):
    """Maps a rank x hidden matrix to the one with orthonormal rows spanning the same space (QR)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        q, r = torch.linalg.qr(weight.mT)
        # Signs chosen so that diag(r) > 0: the factorisation is then unique and the map continuous.
        return (q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)).mT


class Intervention(nn.Module):
    """``h + P^T (act(W h + b) - P h)``, P orthonormal for LoReFT. Computed in float32: the orthogonal map needs a
    QR factorisation, which half precision lacks on some devices."""

    def __init__(self, hidden_size: int, rank: int, orthonormal: bool, dropout: float, act_fn: str, add_bias: bool):
        super().__init__()
        self.proj = nn.Linear(hidden_size, rank, bias=add_bias)
        if orthonormal:
            register_parametrization(self.proj, 'weight', Orthonormal())
        self.learned_source = nn.Linear(hidden_size, rank)
        self.act = ACT2FN[act_fn]
        # Dropout on the edit only: the frozen model never saw dropout on its residual stream (pyreft drops out h too).
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():  # W h + b = P h: with a linear act_fn the edit starts at zero
            self.learned_source.weight.copy_(self.proj.weight)
            self.learned_source.bias.copy_(self.proj.bias if add_bias else torch.zeros(rank))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        h = hidden.to(self.learned_source.weight.dtype)
        weight = self.proj.weight  # read once: each read of a parametrized weight recomputes the QR
        edit = (self.act(self.learned_source(h)) - nn.functional.linear(h, weight, self.proj.bias)) @ weight
        return hidden + self.dropout(edit).to(hidden.dtype)


def _is_reft(name: str) -> bool:
    return '.reft_intervention.' in name


def _after_layer(layer: nn.Module, inputs, output):
    # Decoder layers return the hidden state, or (in older and remote-code models) a tuple that starts with it.
    if isinstance(output, tuple):
        return (layer.reft_intervention(output[0]), *output[1:])
    return layer.reft_intervention(output)


def _check(layers: list[int] | None, rank: int, intervention_type: str, args: dict, num_layers: int,
           hidden_size: int) -> tuple[list[int], dict]:
    """The layer indices to edit and the full intervention arguments; bad flags raise SwiftError."""
    if intervention_type not in INTERVENTIONS:
        raise SwiftError(f'--reft_intervention_type {intervention_type} is not implemented: '
                         f"use {' or '.join(INTERVENTIONS)}")
    if not 0 < rank <= hidden_size:
        raise SwiftError(f'--reft_rank must be between 1 and the hidden size {hidden_size}, got {rank}')
    indices = sorted(set(range(num_layers) if layers is None else layers))
    if not indices or not all(0 <= i < num_layers for i in indices):
        raise SwiftError(f'--reft_layers {layers}: the model has layers 0 to {num_layers - 1}')
    unknown = set(args) - set(DEFAULT_ARGS)
    if unknown:
        raise SwiftError(f"--reft_args: unknown keys {', '.join(sorted(unknown))}; known: {', '.join(DEFAULT_ARGS)}")
    args = {**DEFAULT_ARGS, **args}
    args['act_fn'] = args['act_fn'] or 'linear'  # pyreft reads None as linear
    if args['act_fn'] not in ACT2FN:
        raise SwiftError(f"--reft_args act_fn {args['act_fn']}: choose one of {', '.join(sorted(ACT2FN))}")
    if args['add_bias'] and INTERVENTIONS[intervention_type]:
        raise SwiftError('--reft_args add_bias applies to NoreftIntervention: LoReFT projects with R alone')
    return indices, args


def _layer_list(model: PreTrainedModel, layer_key: str | None) -> nn.ModuleList:
    if layer_key is None:
        parent, attr = decoder_layers(model)
        return getattr(parent, attr)
    try:
        layers = model.get_submodule(layer_key)
    except AttributeError:
        layers = None
    if not isinstance(layers, nn.ModuleList):
        raise SwiftError(f'--reft_layer_key {layer_key}: {type(model).__name__} has no list of layers there')
    return layers


def add_interventions(model: PreTrainedModel, layers: list[int] | None = None, rank: int = 4,
                      intervention_type: str = 'LoreftIntervention', layer_key: str | None = None,
                      args: dict | None = None) -> PreTrainedModel:
    """Freeze the model and edit the output of decoder layers ``layers`` (None: all) with trainable interventions.
    ``layer_key`` names the ModuleList of the layers (None finds it); ``args`` are the --reft_args."""
    layer_list = _layer_list(model, layer_key)
    hidden = model.config.get_text_config().hidden_size
    indices, args = _check(layers, rank, intervention_type, args or {}, len(layer_list), hidden)
    if any(hasattr(layer, 'reft_intervention') for layer in layer_list):
        raise SwiftError('the model already carries ReFT interventions: one ReFT checkpoint per model')
    model.requires_grad_(False)
    for i in indices:
        layer = layer_list[i]
        # A child of the layer: the base weights keep their names, and only reft_intervention.* are new.
        layer.reft_intervention = Intervention(hidden, rank, INTERVENTIONS[intervention_type], **args).to(
            next(layer.parameters()).device)
        layer.register_forward_hook(_after_layer)
    config = {'swift_type': SWIFT_TYPE, 'reft_layers': indices, 'reft_rank': rank,
              'reft_intervention_type': intervention_type, 'reft_layer_key': layer_key, 'reft_args': args}
    save_only_tuner(model, config, _is_reft)
    return model


def load_interventions(model: PreTrainedModel, checkpoint_dir: str, is_trainable: bool = False) -> PreTrainedModel:
    config = swift_config(checkpoint_dir)
    model = add_interventions(model, config['reft_layers'], config['reft_rank'], config['reft_intervention_type'],
                              config['reft_layer_key'], config['reft_args'])
    return load_tuner_weights(model, checkpoint_dir, _is_reft, is_trainable)
