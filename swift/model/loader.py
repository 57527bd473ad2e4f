"""Load a model and its tokenizer from a folder or hub id, detecting the family from config.json."""
import dataclasses
import importlib.util
import json
import math
import os

import torch
from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase)

from ..hub import safe_snapshot_download
from ..utils import SwiftError, get_logger
from .registry import ModelMeta, detect_model_meta

logger = get_logger()

# --task_type: what the model's head computes. seq_cls puts a fresh scoring head on the causal LM's body (a reward
# model's head, trained by swift rlhf --rlhf_type rm); reranker is a one-output seq_cls head; embedding is the body
# alone (its last hidden states are pooled, model/retrieval.py); generative_reranker keeps the LM head.
_AUTO_CLASSES = {'causal_lm': AutoModelForCausalLM, 'seq_cls': AutoModelForSequenceClassification,
                 'embedding': AutoModel, 'reranker': AutoModelForSequenceClassification,
                 'generative_reranker': AutoModelForCausalLM}
_DTYPES = {'float32': torch.float32, 'fp32': torch.float32, 'float16': torch.float16, 'fp16': torch.float16,
           'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


def resolve_torch_dtype(requested: str | None, config: dict) -> torch.dtype:
    """The dtype to load in. Half precision only where a GPU computes it; a CPU uses float32."""
    name = requested if requested not in (None, 'auto') else (config.get('dtype') or config.get('torch_dtype'))
    dtype = _DTYPES.get(name or 'float32', torch.float32)
    if dtype != torch.float32 and not torch.cuda.is_available():
        if requested not in (None, 'auto'):
            logger.warning(f'--torch_dtype {requested}: no GPU here, so the model computes in float32.')
        return torch.float32
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return torch.float16
    return dtype


def dtype_name(requested: str | None, model_dir: str) -> str:
    """``resolve_torch_dtype`` for the model at ``model_dir``, by name, for engines that load it themselves."""
    return str(resolve_torch_dtype(requested, read_config(model_dir))).removeprefix('torch.')


def resolve_attn_impl(requested: str | None) -> str | None:
    if requested in ('flash_attn', 'flash_attention_2'):
        if importlib.util.find_spec('flash_attn') is None or not torch.cuda.is_available():
            logger.warning(f'--attn_impl {requested}: flash-attn is not installed or no GPU is present; using sdpa.')
            return 'sdpa'
        return 'flash_attention_2'
    return requested


def read_config(model_dir: str) -> dict:
    path = os.path.join(model_dir, 'config.json')
    if not os.path.isfile(path):
        raise SwiftError(f'{model_dir} has no config.json: not a Hugging Face model folder')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def load_tokenizer(model_dir: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_processor(model_dir: str, meta: ModelMeta, trust_remote_code: bool = False):
    """The tokenizer, or for a multimodal family its processor (which answers the tokenizer's attributes too)."""
    tokenizer = load_tokenizer(model_dir, trust_remote_code)
    if meta.load_processor is None:
        return tokenizer
    try:
        return meta.load_processor(model_dir, tokenizer)
    except OSError as err:
        raise SwiftError(f'cannot load the processor of {model_dir}: {str(err).splitlines()[0]}') from None


def _is_sequence_classifier(config: dict) -> bool:
    return any(name.endswith('ForSequenceClassification') for name in config.get('architectures') or [])


def get_model_tokenizer(model_id_or_path: str, torch_dtype: str | torch.dtype | None = None, *,
                        model_type: str | None = None, attn_impl: str | None = None, use_hf: bool = False,
                        revision: str | None = None, hub_token: str | None = None, trust_remote_code: bool = False,
                        device_map: str | None = None, task_type: str = 'causal_lm', num_labels: int | None = None,
                        new_special_tokens: list[str] | None = None, problem_type: str | None = None,
                        rope_scaling: str | dict | None = None, max_model_len: int | None = None,
                        init_strategy: str | None = None, experts_impl: str | None = None, **model_kwargs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Return ``(model, tokenizer)``, the tokenizer being the processor for a multimodal family (as in ms-swift).
    ``model.model_meta.template`` names the detected chat template. ``new_special_tokens`` are added to the
    tokenizer and the embeddings grow to hold them (a multiple of 128, as ms-swift); ``problem_type`` is a seq_cls
    model's loss (regression, single_label_classification, multi_label_classification). ``rope_scaling`` (a type
    or a dict) overrides the config's RoPE as ms-swift's --rope_scaling does (see ``rope_config``).
    ``init_strategy`` re-initialises the parameters the checkpoint lacks (e.g. a new seq_cls head);
    ``experts_impl`` is transformers' ``experts_implementation`` of MoE layers (grouped_mm, batched_mm, eager)."""
    model_dir, tokenizer, meta = get_model_folder(model_id_or_path, model_type=model_type, use_hf=use_hf,
                                                  revision=revision, hub_token=hub_token,
                                                  trust_remote_code=trust_remote_code)
    config = read_config(model_dir)
    if task_type == 'causal_lm' and _is_sequence_classifier(config):
        task_type = 'seq_cls'  # e.g. a merged reward model: load the scoring head it was saved with
    if task_type == 'seq_cls':
        model_kwargs['num_labels'] = num_labels or len(config.get('id2label') or {}) or 1
        if problem_type is not None:
            model_kwargs['problem_type'] = problem_type
    elif task_type == 'reranker':
        model_kwargs['num_labels'] = 1
    elif problem_type is not None:
        raise SwiftError(f'--problem_type {problem_type} is for --task_type seq_cls, not {task_type}')
    dtype = torch_dtype if isinstance(torch_dtype, torch.dtype) else resolve_torch_dtype(torch_dtype, config)
    if experts_impl:
        model_kwargs['experts_implementation'] = experts_impl
    if rope_scaling:
        model_kwargs['config'] = rope_config(model_dir, rope_scaling, max_model_len, trust_remote_code)
        for key in ('num_labels', 'problem_type'):  # with a config given, from_pretrained takes no config kwargs
            if key in model_kwargs:
                setattr(model_kwargs['config'], key, model_kwargs.pop(key))
    model_class = meta.model_class if task_type == 'causal_lm' and meta.model_class else _AUTO_CLASSES[task_type]
    try:
        model, loading = model_class.from_pretrained(
            model_dir, dtype=dtype, attn_implementation=resolve_attn_impl(attn_impl), device_map=device_map,
            trust_remote_code=trust_remote_code, use_safetensors=True, output_loading_info=True, **model_kwargs)
    except OSError as err:
        raise SwiftError(f'cannot load the model from {model_dir}: {str(err).splitlines()[0]}') from None
    except ValueError as err:
        if experts_impl and 'experts implementation' in str(err):
            raise SwiftError(f'--experts_impl {experts_impl}: {str(err).splitlines()[0]}') from None
        raise
    if init_strategy is not None:
        init_missing_parameters(model, loading.get('missing_keys') or [], init_strategy)
    if task_type in ('seq_cls', 'reranker'):  # the score is read at the last token that is not padding
        model.config.pad_token_id = tokenizer.pad_token_id
    if new_special_tokens:
        _add_special_tokens(model, tokenizer, new_special_tokens)
    if meta.patch_model is not None:
        meta.patch_model(model)
    model.model_meta = meta
    model.model_dir = model_dir
    model.task_type = task_type  # what engines compute with it (embeddings, scores or text)
    return model, tokenizer


def rope_config(model_dir: str, rope_scaling: str | dict, max_model_len: int | None, trust_remote_code: bool = False):
    """The model's config with ms-swift's --rope_scaling: a type (linear, dynamic, yarn) or a dict. Without a
    ``factor`` it is ceil(max_model_len / the original context), at least 1; ``original_max_position_embeddings``
    is recorded, and ``max_position_embeddings`` becomes max_model_len (default: original x factor)."""
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    base = getattr(config, 'rope_parameters', None)
    if not isinstance(base, dict) or not getattr(config, 'max_position_embeddings', None):
        raise SwiftError(f'--rope_scaling: the config of {model_dir} has no rope_parameters / '
                         'max_position_embeddings to scale')
    rope = {'rope_type': rope_scaling} if isinstance(rope_scaling, str) else dict(rope_scaling)
    if 'type' in rope:
        rope['rope_type'] = rope.pop('type')
    origin = rope.get('original_max_position_embeddings') or base.get('original_max_position_embeddings')
    if origin is None:
        origin = config.max_position_embeddings // base['factor'] if base.get('factor') else \
            config.max_position_embeddings
    rope['original_max_position_embeddings'] = int(origin)
    if 'factor' not in rope:
        if not max_model_len:
            raise SwiftError('--rope_scaling without a factor needs --max_model_len (the context to reach)')
        rope['factor'] = max(float(math.ceil(max_model_len / origin)), 1.0)
    for key in ('rope_theta', 'partial_rotary_factor'):  # kept from the model's own RoPE, as ms-swift does
        if key not in rope and base.get(key) is not None:
            rope[key] = base[key]
    config.rope_parameters = rope
    config.max_position_embeddings = max_model_len or int(origin * rope['factor'])
    logger.info(f'rope_scaling: {rope}, max_position_embeddings: {config.max_position_embeddings}')
    return config


def _init_high_dim(init):
    """Matrices take ``init``; vectors (biases, norms) are zeroed, as ms-swift does."""
    def apply(param):
        if param.dim() > 1:
            init(param)
        elif param.numel():
            torch.nn.init.zeros_(param)
    return apply


# ms-swift's --init_strategy choices, with its constants.
INIT_STRATEGIES = {
    'zero': torch.nn.init.zeros_,
    'uniform': lambda p: torch.nn.init.uniform_(p, -0.1, 0.1),
    'normal': lambda p: torch.nn.init.normal_(p, 0.0, 0.01),
    'xavier_uniform': _init_high_dim(torch.nn.init.xavier_uniform_),
    'xavier_normal': _init_high_dim(torch.nn.init.xavier_normal_),
    'kaiming_uniform': _init_high_dim(lambda p: torch.nn.init.kaiming_uniform_(p, a=0.1, mode='fan_out',
                                                                               nonlinearity='leaky_relu')),
    'kaiming_normal': _init_high_dim(lambda p: torch.nn.init.kaiming_normal_(p, mode='fan_in', nonlinearity='relu')),
    'orthogonal': lambda p: torch.nn.init.orthogonal_(p, gain=1.0),
}


def init_missing_parameters(model: PreTrainedModel, missing: list[str], strategy: str) -> list[str]:
    """Initialise the parameters ``missing`` from the checkpoint with ``strategy``; returns their names."""
    params = dict(model.named_parameters())
    names = [name for name in missing if name in params]
    with torch.no_grad():
        for name in names:
            logger.info(f'--init_strategy {strategy}: initialising {name}')
            INIT_STRATEGIES[strategy](params[name])
    return names


def _add_special_tokens(model: PreTrainedModel, tokenizer, tokens: list[str]) -> None:
    """ms-swift's --new_special_tokens: add them, and resize the embeddings when the vocabulary outgrows them."""
    tokenizer = getattr(tokenizer, 'tokenizer', tokenizer)  # a processor's tokenizer
    added = tokenizer.add_tokens(tokens, special_tokens=True)
    if added:
        logger.info(f'added {added} new special tokens')
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(math.ceil(len(tokenizer) / 128) * 128)


def get_model_folder(model_id_or_path: str, *, model_type: str | None = None, use_hf: bool = False,
                     revision: str | None = None, hub_token: str | None = None, trust_remote_code: bool = False
                     ) -> tuple[str, PreTrainedTokenizerBase, ModelMeta]:
    """``(folder, tokenizer, meta)`` of a model without loading its weights, downloading a hub id first: what an
    engine that loads the weights itself (vLLM) needs. ``meta.template`` names the detected chat template."""
    model_dir = safe_snapshot_download(model_id_or_path, use_hf=use_hf, revision=revision, token=hub_token)
    meta = detect_model_meta(read_config(model_dir), model_type)
    tokenizer = load_processor(model_dir, meta, trust_remote_code)
    return model_dir, tokenizer, dataclasses.replace(meta, template=meta.pick_template(tokenizer.chat_template))
