"""What the alignment algorithms share: their settings, the table entry each declares, and the bridge to trl."""
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import torch
from torch import Tensor
from transformers import Trainer, TrainingArguments

from ..utils import SwiftError


# --beta where the algorithm declares no default of its own (Algorithm.defaults).
DEFAULT_BETA = 0.1


@dataclass
class AlignmentArguments:
    """The flags several algorithms share; each algorithm's own group (in its file) extends this one."""
    beta: Optional[float] = field(
        default=None, metadata={'help': 'Strength of the KL/reward scale. Default 0.1; SimPO 2.0; GRPO 0.04. '
                                        'GKD: 0.5, 0 = forward KL, 1 = reverse KL.'})
    loss_type: list[str] = field(
        default_factory=list, metadata={'help': 'DPO: sigmoid (default), hinge, ipo, exo_pair, nca_pair, robust, '
                                                'bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, '
                                                'discopop, sigmoid_norm, sft; several combine with --loss_weights. '
                                                'KTO: kto (default) or apo_zero_unpaired. GRPO: grpo (default), '
                                                'bnpo, dr_grpo, dapo, sapo, cispo.'})
    loss_weights: list[float] = field(default_factory=list, metadata={'help': 'Weights of several DPO losses.'})
    ref_model: Optional[str] = field(
        default=None, metadata={'help': 'Reference model of the algorithms that use one (DPO, KTO, PPO) with full '
                                        'training; default: a frozen copy of --model (with LoRA: the base model, '
                                        'adapter disabled).'})
    ref_adapters: list[str] = field(
        default_factory=list, metadata={'help': 'DPO/KTO/GRPO with an adapter: the reference is the base model with '
                                                'this adapter (e.g. the SFT checkpoint that --adapters also starts '
                                                'from) instead of the bare base model.'})
    ref_model_type: Optional[str] = field(default=None, metadata={'help': 'model_type of --ref_model.'})
    ref_model_revision: Optional[str] = field(default=None, metadata={'help': 'Hub revision of --ref_model.'})
    precompute_ref_log_probs: bool = field(
        default=False, metadata={'help': 'DPO/KTO: compute the reference log-probs once before training.'})
    reward_model: list[str] = field(
        default_factory=list, metadata={'help': 'Reward model checkpoints (trained with --rlhf_type rm): GRPO\'s '
                                                'rewards beside --reward_funcs; PPO\'s reward.'})
    reward_adapters: list[str] = field(
        default_factory=list, metadata={'help': 'Adapters merged into each --reward_model (e.g. a --rlhf_type rm '
                                                'LoRA checkpoint over a base given as --reward_model).'})
    reward_model_type: list[str] = field(
        default_factory=list, metadata={'help': 'model_type of each --reward_model (default: its args.json or '
                                                'detected).'})
    reward_model_revision: list[str] = field(
        default_factory=list, metadata={'help': 'Hub revision of each --reward_model.'})


@dataclass
class SamplingArguments:
    """How the algorithms that sample completions during training (GRPO, PPO, GKD) sample them."""
    max_completion_length: int = field(default=512, metadata={'help': 'Longest completion, in tokens.'})
    temperature: float = field(
        default=0.9, metadata={'help': "Sampling temperature of the completions (GKD: also softens both models' "
                                       'logits).'})
    top_p: float = field(default=1.0, metadata={'help': 'Nucleus sampling of the completions.'})
    top_k: Optional[int] = field(default=None, metadata={'help': 'Top-k sampling of the completions.'})
    repetition_penalty: float = field(default=1.0, metadata={'help': 'Repetition penalty of the completions.'})


# What an algorithm can ask the pipeline for, handed to its make_trainer as keyword arguments of these names.
NEEDS = ('ref_model', 'reward_funcs', 'reward_model', 'value_model', 'teacher_model', 'template', 'completions_path',
         'stop_token_ids', 'expert_rows')


@dataclass(frozen=True)
class Algorithm:
    """One ``--rlhf_type``, declared in its own file and named in ``ALGORITHMS``: what its rows must hold, how the
    template encodes them, its flag group, what it needs from the pipeline, and how its trainer is built.

    ``make_trainer(training, settings, **kwargs)`` gets the run's TrainingArguments (a transformers config, not the
    command line), ``settings`` (its ``arguments`` group), what ``needs`` names, and the keyword arguments every
    trainer takes (model, datasets, processing_class, callbacks, checkpoint_args).
    """
    rows: str  # the dataset row check: 'pair' (chosen + rejected), 'kto' (answer + label), 'prompt', 'answer'
    encoding: str  # the template method: 'pair', 'completion', 'prompt', 'answer'
    make_trainer: Callable[..., Trainer]
    arguments: type = AlignmentArguments
    needs: tuple[str, ...] = ()  # of NEEDS
    defaults: dict = field(default_factory=dict)  # flags whose default differs for this algorithm (e.g. beta)
    check: Callable[[Any], None] | None = None  # validates the parsed arguments: a one-line SwiftError


def trl_config(config_cls: type[TrainingArguments], args: TrainingArguments, **settings) -> TrainingArguments:
    """A trl config holding every TrainingArguments value of ``args``, overridden by the algorithm's ``settings``."""
    training = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init}
    return config_cls(**{**training, **settings})


def completion_mask(completion_ids: Tensor, stop_ids: list[int]) -> Tensor:
    """1 up to and including the first stop token of each sampled row, 0 after it (what ``generate`` pads with)."""
    is_stop = torch.isin(completion_ids, torch.tensor(stop_ids, device=completion_ids.device))
    stops_before = torch.cumsum(is_stop.long(), -1) - is_stop.long()
    return (stops_before == 0).float()


def keep_trainable_float32(model: torch.nn.Module) -> None:
    """trl casts the adapter of a quantized model to bfloat16, which a CPU computes ~67x slower: undo it there."""
    if torch.cuda.is_available():
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.float()


def use_base_as_reference(model: torch.nn.Module, ref_adapters: list[str] = ()) -> None:
    """trl copies an existing adapter into a 'ref' adapter to serve as the reference. Ours is freshly made or being
    resumed, so the reference is the base model with the adapter disabled: drop the copy (and its memory). With
    --ref_adapters, that adapter is loaded as 'ref', which trl then switches to for the reference."""
    peft_config = getattr(model, 'peft_config', {})
    if 'ref' in peft_config:
        model.delete_adapter('ref')
    if ref_adapters:
        if not peft_config:
            raise SwiftError('--ref_adapters: the reference adapter sits beside the trained one, so it needs an '
                             'adapter run (--train_type lora); with full training give --ref_model')
        if len(ref_adapters) > 1:
            raise SwiftError(f'--ref_adapters takes one adapter, got {len(ref_adapters)}')
        model.load_adapter(ref_adapters[0], adapter_name='ref', is_trainable=False)
