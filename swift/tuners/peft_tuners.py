"""The adapter families peft implements, by ``--train_type``: each maps the shared settings to a peft config."""
import importlib.util
from typing import Callable

import torch
from peft import (AdaLoraConfig, BOFTConfig, FourierFTConfig, LoftQConfig, LoraConfig, LoraGAConfig, MissConfig,
                  PeftConfig, VeraConfig)

from ..utils import SwiftError
from .arguments import TunerArguments


def _common(s: TunerArguments, task_type: str) -> dict:
    # peft understands 'all-linear' itself and leaves the output head out. SEQ_CLS also trains the fresh scoring
    # head of a reward model or classifier.
    targets = 'all-linear' if s.target_modules == ['all-linear'] else s.target_modules
    if s.target_regex:  # peft reads a string target_modules as a regex that must match the whole module name
        targets = s.target_regex
    return {'task_type': PEFT_TASK_TYPES[task_type], 'target_modules': targets,
            'modules_to_save': s.modules_to_save or None}


# --task_type as peft names it.
PEFT_TASK_TYPES = {'causal_lm': 'CAUSAL_LM', 'seq_cls': 'SEQ_CLS', 'embedding': 'FEATURE_EXTRACTION',
                   'reranker': 'SEQ_CLS', 'generative_reranker': 'CAUSAL_LM'}


# ms-swift's names of LoRA-GA's scalings, as peft spells them.
LORA_GA_SCALES = {'stable': 'stable', 'unit': 'unit', 'gd': 'gd_scale', 'weightS': 'weight_svd'}


def _init_lora_weights(s: TunerArguments) -> dict:
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


def _lora(s: TunerArguments, task_type: str) -> PeftConfig:
    extra = {'target_parameters': s.target_parameters} if s.target_parameters else {}
    return LoraConfig(r=s.lora_rank, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, bias=s.lora_bias,
                      use_dora=s.use_dora, use_rslora=s.use_rslora, **_init_lora_weights(s), **_common(s, task_type),
                      **extra)


# AdaLoRA's budget schedule needs the number of steps, which the trainer knows only when training begins; this
# placeholder lets the config validate, and tuner_callbacks replaces it with the real count.
ADALORA_PLACEHOLDER_STEPS = 10 ** 9


def _adalora(s: TunerArguments, task_type: str) -> PeftConfig:
    return AdaLoraConfig(target_r=s.adalora_target_r, init_r=s.adalora_init_r, tinit=s.adalora_tinit,
                         tfinal=s.adalora_tfinal, deltaT=s.adalora_deltaT, beta1=s.adalora_beta1,
                         beta2=s.adalora_beta2, orth_reg_weight=s.adalora_orth_reg_weight,
                         total_step=ADALORA_PLACEHOLDER_STEPS, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                         **_common(s, task_type))


def _vera(s: TunerArguments, task_type: str) -> PeftConfig:
    return VeraConfig(r=s.vera_rank, projection_prng_key=s.vera_projection_prng_key, vera_dropout=s.vera_dropout,
                      d_initial=s.vera_d_initial, **_common(s, task_type))


def _boft(s: TunerArguments, task_type: str) -> PeftConfig:
    # peft takes one of block size and block number: --boft_block_num replaces the block size.
    size = 0 if s.boft_block_num else s.boft_block_size
    return BOFTConfig(boft_block_size=size, boft_block_num=s.boft_block_num,
                      boft_n_butterfly_factor=s.boft_n_butterfly_factor, boft_dropout=s.boft_dropout,
                      **_common(s, task_type))


def _fourierft(s: TunerArguments, task_type: str) -> PeftConfig:
    return FourierFTConfig(n_frequency=s.fourier_n_frequency, scaling=s.fourier_scaling, **_common(s, task_type))


def _bone(s: TunerArguments, task_type: str) -> PeftConfig:
    # peft renamed Bone to MiSS; --lora_rank is its block size r.
    return MissConfig(r=s.lora_rank, **_common(s, task_type))


PEFT_TUNERS: dict[str, Callable[[TunerArguments, str], PeftConfig]] = {
    'lora': _lora, 'qlora': _lora, 'adalora': _adalora, 'vera': _vera, 'boft': _boft, 'fourierft': _fourierft,
    'bone': _bone,
}
