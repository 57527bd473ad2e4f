"""Steps shared by the pipelines: argument intake, system prompts, checkpoint arguments, model + template."""
import dataclasses
import os
import random
import sys
from typing import Callable, TypeVar

import torch

from ..arguments import BaseArguments, parse_args
from ..arguments.base_args import CHECKPOINT_ARGS, CHECKPOINT_DATA_ARGS
from ..dataset import load_rows
from ..model import bnb_config, get_model_folder, get_model_tokenizer
from ..template import TEMPLATE_REGISTRY, Template, get_template
from ..template.vision import VisionTemplate
from ..utils import SwiftError
from ..utils.io import read_json
from ..utils.plugins import import_plugins

A = TypeVar('A', bound=BaseArguments)


def to_arguments(cls: type[A], args: A | list[str] | None) -> A:
    """The command's arguments, parsed unless given as such, with their --external_plugins imported."""
    if not isinstance(args, cls):
        args = parse_args(cls, sys.argv[1:] if args is None else args)
    import_plugins(getattr(args, 'external_plugins', []))  # swift web-ui has none: its jobs are commands that do
    return args


def read_system(system: str | None) -> str | None:
    """``--system`` is the prompt itself, or a path to a text file holding it (as the seeds' prompt.txt)."""
    if system and len(system) < 4096 and os.path.isfile(system):
        with open(system, encoding='utf-8') as f:
            return f.read().strip()
    return system


def apply_checkpoint_args(args: A) -> A:
    """Fill what the user left unset from the checkpoint's args.json (``--load_args false`` turns this off)."""
    ckpt = args.checkpoint_dir
    if args.model is None and ckpt is None:
        _missing_base_model(args.adapter_paths[0])
    if ckpt is None or not args.load_args:
        return args
    saved = read_json(os.path.join(ckpt, 'args.json'))
    defaults = {f.name: f.default for f in dataclasses.fields(args) if f.default is not dataclasses.MISSING}
    keys = CHECKPOINT_ARGS + (CHECKPOINT_DATA_ARGS if args.load_data_args else ())
    for key in keys:
        current = getattr(args, key)
        if key in saved and (current == defaults.get(key) or current in (None, [])):
            setattr(args, key, saved[key])
    if args.adapters and args.model == ckpt:
        args.model = saved['model']  # --model pointed at the adapter folder; the base is in args.json
    return args


def _missing_base_model(adapter: str) -> None:
    """Only --adapters was given, and the first has no args.json naming its base model."""
    if not os.path.isdir(adapter):
        raise SwiftError(f'--adapters {adapter}: no such folder')
    raise SwiftError(f'--adapters {adapter} has no args.json naming its base model: give --model too')


def load_model(args: BaseArguments, model_id: str | None = None, **model_kwargs):
    """``(model, tokenizer)`` of --model, or of ``model_id`` loaded the same way (e.g. a reference model)."""
    if args.quantized and args.quant_method in (None, 'bnb'):  # export's gptq/awq/fp8 quantize after loading
        config = bnb_config(args.quant_bits, args.bnb_4bit_quant_type, args.bnb_4bit_use_double_quant,
                            args.bnb_4bit_compute_dtype)
        if args.bnb_4bit_quant_storage:
            if args.quant_bits != 4:
                raise SwiftError(f'--bnb_4bit_quant_storage is for --quant_bits 4, not {args.quant_bits}')
            config.bnb_4bit_quant_storage = getattr(torch, args.bnb_4bit_quant_storage)
        model_kwargs['quantization_config'] = config
    return get_model_tokenizer(
        model_id or args.model, args.torch_dtype, model_type=args.model_type, attn_impl=args.attn_impl,
        use_hf=args.use_hf, revision=args.model_revision, hub_token=args.hub_token,
        trust_remote_code=args.trust_remote_code, device_map=args.device_map, task_type=args.task_type,
        num_labels=args.num_labels, new_special_tokens=args.new_special_tokens, problem_type=args.problem_type,
        rope_scaling=args.rope_scaling, max_model_len=args.max_length, init_strategy=args.init_strategy,
        experts_impl=args.experts_impl, **({'max_memory': args.max_memory} if args.max_memory else {}),
        **model_kwargs)


def load_model_and_template(args: BaseArguments, **model_kwargs):
    """The model, its tokenizer and the template the arguments ask for (or the detected one)."""
    model, tokenizer = load_model(args, **model_kwargs)
    template = build_template(args, tokenizer, model.model_meta.template)
    return model, tokenizer, template


def load_folder_and_template(args: BaseArguments) -> tuple[str, Template]:
    """The model's folder and template, without its weights: for an engine that loads them itself (vLLM)."""
    model_dir, tokenizer, meta = get_model_folder(
        args.model, model_type=args.model_type, use_hf=args.use_hf, revision=args.model_revision,
        hub_token=args.hub_token, trust_remote_code=args.trust_remote_code)
    return model_dir, build_template(args, tokenizer, meta.template)


def build_template(args: BaseArguments, tokenizer, detected: str) -> Template:
    template_type = args.template or (detected if args.use_chat_template else 'default')
    if args.template_backend == 'jinja' and args.use_chat_template:
        template_type = _jinja_template(tokenizer, template_type)
    return get_template(template_type, tokenizer, default_system=read_system(args.system), max_length=args.max_length,
                        truncation_strategy=args.truncation_strategy, loss_scale=args.loss_scale,
                        use_chat_template=args.use_chat_template, response_prefix=args.response_prefix,
                        enable_thinking=args.enable_thinking, preserve_thinking=args.preserve_thinking,
                        add_non_thinking_prefix=args.add_non_thinking_prefix, agent_template=args.agent_template)


def _jinja_template(tokenizer, template_type: str) -> str:
    """--template_backend jinja: the tokenizer's own chat template (the hf template) in place of ours."""
    if issubclass(TEMPLATE_REGISTRY.get(template_type, (None, Template))[1], VisionTemplate):
        raise SwiftError(f'--template_backend jinja: the {template_type} template expands images and videos, which '
                         "the tokenizer's chat template does not; use --template_backend swift")
    if not getattr(tokenizer, 'chat_template', None):
        raise SwiftError("--template_backend jinja needs a tokenizer with a chat template; this one has none")
    return 'hf'


def load_dataset_rows(args: BaseArguments, specs: list[str], check: Callable[[dict], None] | None = None) -> list[dict]:
    """Normalised rows of ``specs`` with the data arguments of ``args`` (columns, strictness, identity, interleaving,
    cache); ``check`` is what the task needs of each row. ``specs`` being ``args.val_dataset`` shuffles them with
    ``--val_dataset_shuffle`` (--data_seed), as ms-swift does."""
    is_val = specs is args.val_dataset
    rows = load_rows(specs, columns=args.columns, strict=args.strict, seed=args.data_seed, use_hf=args.use_hf,
                     model_name=args.model_name, model_author=args.model_author, check=check,
                     auto_columns=not args.disable_auto_column_mapping,
                     interleave_prob=None if is_val else args.interleave_prob,
                     stopping_strategy=args.stopping_strategy, cache=args.load_from_cache_file).rows
    if is_val and args.val_dataset_shuffle:
        random.Random(args.data_seed).shuffle(rows)
    return rows
