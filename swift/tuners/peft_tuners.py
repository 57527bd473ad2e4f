"""The adapter families peft implements, by ``--train_type``: each maps the shared settings to a peft config."""
import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import torch
from peft import (AdaLoraConfig, BOFTConfig, FourierFTConfig, LoftQConfig, LoraConfig, LoraGAConfig, MissConfig,
                  PeftConfig, VeraConfig)

from ..utils import SwiftError


@dataclass
class TunerSettings:
    """What the adapter tuners read from the command line."""
    rank: int = 8
    alpha: int = 32
    dropout: float = 0.05
    bias: str = 'none'
    target_modules: list[str] = field(default_factory=lambda: ['all-linear'])
    modules_to_save: list[str] = field(default_factory=list)
    use_dora: bool = False
    use_rslora: bool = False
    vera_rank: int = 256
    boft_block_size: int = 4
    boft_n_butterfly_factor: int = 1
    fourier_n_frequency: int = 2000
    fourier_scaling: float = 300.0
    init_weights: str = 'true'
    lora_ga_direction: str = 'ArB2r'
    lora_ga_scale: str = 'stable'
    lora_ga_stable_gamma: int = 16
    adalora_target_r: int = 8
    adalora_init_r: int = 12
    adalora_tinit: int = 0
    adalora_tfinal: int = 0
    adalora_deltaT: int = 1
    adalora_beta1: float = 0.85
    adalora_beta2: float = 0.85
    adalora_orth_reg_weight: float = 0.5
    llamapro_num_new_blocks: int = 4
    llamapro_num_groups: int | None = None
    adapter_length: int = 128
    adapter_act: str = 'gelu'
    reft_layers: list[int] | None = None
    reft_rank: int = 4
    reft_intervention_type: str = 'LoreftIntervention'
    reft_layer_key: str | None = None
    reft_args: dict | None = None
    lisa_activated_layers: int = 0
    lisa_step_interval: int = 20
    # Full training of part of the model.
    freeze_parameters: list[str] = field(default_factory=list)
    freeze_parameters_ratio: float = 0.0
    trainable_parameters: list[str] = field(default_factory=list)
    # Multimodal models: the parts that full training freezes and that 'all-linear' leaves out.
    freeze_llm: bool = False
    freeze_vit: bool = True
    freeze_aligner: bool = True
    # peft's task type: SEQ_CLS also trains the fresh scoring head of a reward model.
    task_type: str = 'CAUSAL_LM'

    @property
    def targets(self) -> str | list[str]:
        # peft understands 'all-linear' itself and leaves the output head out.
        return 'all-linear' if self.target_modules == ['all-linear'] else self.target_modules

    @property
    def common(self) -> dict:
        return {'task_type': self.task_type, 'target_modules': self.targets,
                'modules_to_save': self.modules_to_save or None}


# ms-swift's names of LoRA-GA's scalings, as peft spells them.
LORA_GA_SCALES = {'stable': 'stable', 'unit': 'unit', 'gd': 'gd_scale', 'weightS': 'weight_svd'}


def _init_lora_weights(s: TunerSettings) -> dict:
    """peft's ``init_lora_weights`` (plus LoftQ's or LoRA-GA's config) for ``--init_weights`` (checked by
    TrainArguments)."""
    value = s.init_weights
    if value in ('true', 'false'):
        return {'init_lora_weights': value == 'true'}
    if value == 'lora-ga':
        return {'init_lora_weights': 'lora_ga', 'lora_ga_config': LoraGAConfig(
            direction=s.lora_ga_direction, scale=LORA_GA_SCALES[s.lora_ga_scale], stable_gamma=s.lora_ga_stable_gamma)}
    if value != 'loftq':
        return {'init_lora_weights': value}
    # peft's LoftQ quantizes each weight on cuda (hard-coded) and needs scipy.
    if not torch.cuda.is_available():
        raise SwiftError('--init_weights loftq needs a GPU: peft quantizes the weights with bitsandbytes on cuda')
    if importlib.util.find_spec('scipy') is None:
        raise SwiftError('--init_weights loftq needs scipy: pip install scipy')
    return {'init_lora_weights': 'loftq', 'loftq_config': LoftQConfig(loftq_bits=4)}


def _lora(s: TunerSettings) -> PeftConfig:
    return LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, bias=s.bias, use_dora=s.use_dora,
                      use_rslora=s.use_rslora, **_init_lora_weights(s), **s.common)


# AdaLoRA's budget schedule needs the number of steps, which the trainer knows only when training begins; this
# placeholder lets the config validate, and tuner_callbacks replaces it with the real count.
ADALORA_PLACEHOLDER_STEPS = 10 ** 9


def _adalora(s: TunerSettings) -> PeftConfig:
    return AdaLoraConfig(target_r=s.adalora_target_r, init_r=s.adalora_init_r, tinit=s.adalora_tinit,
                         tfinal=s.adalora_tfinal, deltaT=s.adalora_deltaT, beta1=s.adalora_beta1,
                         beta2=s.adalora_beta2, orth_reg_weight=s.adalora_orth_reg_weight,
                         total_step=ADALORA_PLACEHOLDER_STEPS, lora_alpha=s.alpha, lora_dropout=s.dropout,
                         **s.common)


def _vera(s: TunerSettings) -> PeftConfig:
    return VeraConfig(r=s.vera_rank, vera_dropout=s.dropout, **s.common)


def _boft(s: TunerSettings) -> PeftConfig:
    return BOFTConfig(boft_block_size=s.boft_block_size, boft_n_butterfly_factor=s.boft_n_butterfly_factor,
                      boft_dropout=s.dropout, **s.common)


def _fourierft(s: TunerSettings) -> PeftConfig:
    return FourierFTConfig(n_frequency=s.fourier_n_frequency, scaling=s.fourier_scaling, **s.common)


def _bone(s: TunerSettings) -> PeftConfig:
    # peft renamed Bone to MiSS; --lora_rank is its block size r.
    return MissConfig(r=s.rank, **s.common)


PEFT_TUNERS: dict[str, Callable[[TunerSettings], PeftConfig]] = {
    'lora': _lora, 'qlora': _lora, 'adalora': _adalora, 'vera': _vera, 'boft': _boft, 'fourierft': _fourierft,
    'bone': _bone,
}
