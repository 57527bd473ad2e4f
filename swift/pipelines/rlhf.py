"""``swift rlhf``: preference alignment (dpo, orpo, cpo, simpo, kto), reward modelling (rm), online RL (grpo)
and distillation (gkd).

    swift rlhf --rlhf_type dpo --model Qwen/Qwen2.5-7B-Instruct --dataset pairs.jsonl --train_type lora
    swift rlhf --rlhf_type grpo --model Qwen/Qwen2.5-7B-Instruct --dataset math.jsonl --reward_funcs accuracy format

The run is ``swift sft``'s (same model loading, tuners, output folder, checkpoints); only the data encoding and
the trainer come from the algorithm's entry in ``swift.rlhf.ALGORITHMS``.
"""
import copy
import dataclasses
import os
from dataclasses import dataclass
from functools import partial

from ..arguments import BaseArguments, group
from ..dataset import ROW_CHECKS
from ..rlhf import ALGORITHMS, Algorithm
from ..rlhf.arguments import rlhf_arguments
from ..rlhf.data import encode_alignment_rows
from ..rlhf.gkd import check_teacher_tokenizer
from ..rlhf.rewards import get_reward_funcs
from ..template import Template
from ..tuners import Swift
from ..utils import SwiftError
from .cached_dataset import load_cached_alignment_datasets
from .common import load_dataset_rows, load_model, to_arguments
from .train import encode_split, load_train_val_rows, run_training


def rlhf_main(args=None) -> dict:
    args = to_arguments(rlhf_arguments(), args)
    algorithm = ALGORITHMS[args.rlhf_type]
    if args.eval_use_evalscope:  # swift sft and pt evaluate with EvalScope; preference trainers not yet
        raise SwiftError('--eval_use_evalscope: not built yet for swift rlhf; run swift eval on a checkpoint')
    return run_training(args, load_data=partial(_load_datasets, algorithm=algorithm),
                        make_trainer=partial(_make_trainer, args, algorithm))


def _load_datasets(args, template: Template, algorithm: Algorithm):
    if template.weighted_scale:  # the preference and policy losses read 0/1 masks: weights would be dropped
        raise SwiftError(f'--loss_scale {args.loss_scale}: weighted loss scales are built for swift sft; rlhf takes '
                         'default, last_round or all (+ignore_empty_think)')
    if args.cached_dataset or args.cached_val_dataset:  # rows encoded once by swift export --to_cached_dataset
        return load_cached_alignment_datasets(args, template, algorithm.encoding)
    train_rows, val_rows = load_train_val_rows(args, ROW_CHECKS[algorithm.rows])
    return (encode_alignment_rows(template, train_rows, algorithm.encoding, 'train'),
            encode_alignment_rows(template, val_rows, algorithm.encoding, 'val'))


@dataclass
class _Run:
    """What the providers of an algorithm's needs read besides the arguments."""
    template: Template
    tokenizer: object
    run_dir: str


def _make_trainer(args, algorithm: Algorithm, training, template: Template, **kwargs):
    """The algorithm's trainer, given the run's TrainingArguments, its own flag group and what it needs."""
    run = _Run(template, kwargs['processing_class'], training.output_dir)
    needed = {need: PROVIDERS[need](args, run) for need in algorithm.needs}
    return algorithm.make_trainer(training, group(args, algorithm.arguments), **needed, **kwargs)


def _reward_funcs(args, run: _Run) -> list:
    """--reward_funcs by name (--external_plugins registered theirs as the command started), then each
    --reward_model. Each reward takes the settings its ``__init__`` names."""
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
    return get_reward_funcs(args.reward_funcs, **settings) + [_reward_model(args, i)
                                                               for i in range(len(args.reward_model))]


def _reward_model(args, index: int = 0, checkpoint: str | None = None):
    """--reward_model number ``index`` (or ``checkpoint``): a ``--rlhf_type rm`` checkpoint is its base (from
    args.json) with the adapter merged in; any other folder or hub id loads as a one-label sequence classifier, as
    ms-swift loads it. Its --reward_model_type and --reward_model_revision apply, then --reward_adapters merge in."""
    checkpoint = checkpoint or args.reward_model[index]
    model_type, revision = (_nth(args.reward_model_type, index, '--reward_model_type'),
                            _nth(args.reward_model_revision, index, '--reward_model_revision'))
    if os.path.isfile(os.path.join(checkpoint, 'args.json')):
        rm_args = BaseArguments.from_pretrained(checkpoint)
    else:
        rm_args = copy.copy(args)
        rm_args.model, rm_args.model_type, rm_args.model_revision = checkpoint, None, None
    rm_args.task_type, rm_args.num_labels = 'seq_cls', 1
    rm_args.model_type = model_type or rm_args.model_type
    rm_args.model_revision = revision or rm_args.model_revision
    is_adapter = os.path.isfile(os.path.join(checkpoint, 'adapter_config.json'))
    model, _ = load_model(rm_args, None if is_adapter else checkpoint)
    for adapter in ([checkpoint] if is_adapter else []) + list(args.reward_adapters):
        model = Swift.from_pretrained(model, adapter).merge_and_unload()
    return model.requires_grad_(False).eval()


def _nth(values: list, index: int, flag: str):
    """The value of a per-reward-model flag for model ``index``: one value serves every model."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if index >= len(values):
        raise SwiftError(f'{flag} has {len(values)} values for more --reward_model entries')
    return values[index]


def _reference_model(args, run: _Run):
    """--ref_model; else with full training a frozen copy of --model. None lets a LoRA run disable its adapter."""
    if args.ref_model is None and (args.train_type != 'full' or args.precompute_ref_log_probs):
        return None
    if args.ref_model is None:
        return _frozen_model(args, None)[0]
    return _frozen_model(args, args.ref_model, args.ref_model_type, args.ref_model_revision)[0]


def _teacher_model(args, run: _Run):
    """--teacher_model (with its --teacher_model_type, --teacher_model_revision), loaded like --model, with
    --teacher_adapters merged in, and frozen; its tokenizer must be the student's."""
    model, teacher_tokenizer = _frozen_model(args, args.teacher_model, args.teacher_model_type,
                                             args.teacher_model_revision, args.teacher_adapters)
    check_teacher_tokenizer(teacher_tokenizer, run.tokenizer, args.teacher_model)
    return model


def _frozen_model(args, model_id: str | None, model_type: str | None = None, revision: str | None = None,
                  adapters: list[str] = ()):
    """``model_id`` loaded like --model, under its own model_type and revision when given, adapters merged in."""
    if model_id is not None:  # --model's own type and revision do not describe another model
        args = copy.copy(args)
        args.model_type, args.model_revision = model_type, revision
    model, tokenizer = load_model(args, model_id)
    for adapter in adapters:
        model = Swift.from_pretrained(model, adapter).merge_and_unload()
    return model.requires_grad_(False).eval(), tokenizer


def _expert_rows(args, run: _Run) -> list[dict] | None:
    """CHORD's --chord_sft_dataset, encoded by the template as swift sft encodes its rows."""
    if not args.chord_sft_dataset:
        return None
    return encode_split(run.template, load_dataset_rows(args, args.chord_sft_dataset), args, 'chord_sft_dataset')


# What the pipeline hands an algorithm for each of its ``needs`` (swift.rlhf.base.NEEDS).
PROVIDERS = {
    'ref_model': _reference_model,
    'reward_funcs': _reward_funcs,
    'reward_model': lambda args, run: _reward_model(args),
    'value_model': lambda args, run: _reward_model(args, checkpoint=args.value_model).requires_grad_(True),
    'teacher_model': _teacher_model,
    'template': lambda args, run: run.template,
    'completions_path': lambda args, run: (os.path.join(run.run_dir, 'completions.jsonl') if args.log_completions
                                           else None),
    'stop_token_ids': lambda args, run: run.template.single_token_stops(),
    'expert_rows': _expert_rows,
}
