"""``swift export``: merge LoRA adapters into the base model, quantize, write an Ollama Modelfile, push to a hub.

    swift export --adapters output/vx-xxx/checkpoint-xxx --merge_lora true     (or: swift merge-lora --adapters ...)
    swift export --model Qwen/Qwen2.5-7B-Instruct --quant_method bnb --quant_bits 4 --output_dir qwen-bnb-int4
    swift export --model Qwen/Qwen2.5-7B-Instruct --quant_method gptq --quant_bits 4 --dataset calib.jsonl \
        --output_dir qwen-gptq-int4
    swift export --model Qwen/Qwen2.5-7B-Instruct --quant_method fp8 --output_dir qwen-fp8
    swift export --model output/vx-xxx/checkpoint-xxx-merged --to_ollama true --output_dir ollama
    swift export --adapters output/vx-xxx/checkpoint-xxx --push_to_hub true --hub_model_id me/my-model
    swift export --model Qwen/Qwen2.5-7B --dataset corpus.jsonl --to_cached_dataset true --output_dir cached
"""
import os

from ..arguments import ExportArguments
from ..export import CALIBRATED_METHODS, merge_adapters, quantize_model, save_model_atomically, write_modelfile
from ..hub import push_folder
from ..model import detect_model_meta
from ..model.loader import load_tokenizer, read_config
from ..tuners import Swift
from ..utils import SwiftError, get_logger
from .cached_dataset import export_cached_dataset
from .common import (apply_checkpoint_args, build_template, load_dataset_rows, load_model_and_template,
                     to_arguments)

logger = get_logger()


def export_main(args: ExportArguments | list[str] | None = None) -> dict:
    args = apply_checkpoint_args(to_arguments(ExportArguments, args))
    result = {}
    if args.to_cached_dataset:
        result['cached_dataset'] = export_cached_dataset(args)
    if args.merge_lora:
        result['merged_dir'] = merge_lora(args)
    if args.quantize:
        result['quantized_dir'] = quantize(args)
    if args.to_ollama:
        result['modelfile'] = to_ollama(args, result.get('merged_dir') or args.model)
    if args.push_to_hub:
        folder = (result.get('merged_dir') or result.get('quantized_dir')
                  or (args.adapters[0] if args.adapters else args.model))
        hub = push_folder(folder, args.hub_model_id, use_hf=args.use_hf, token=args.hub_token,
                          private=args.hub_private_repo, commit_message=args.commit_message)
        logger.info(f'pushed {folder} to {hub} as {args.hub_model_id}')
    return result


def merge_lora_main(argv: list[str]) -> dict:
    """``swift merge-lora``: ms-swift's name for ``swift export --merge_lora true``, with the same flags."""
    return export_main([*argv, '--merge_lora', 'true'])


def merge_lora(args, reuse_existing: bool = False) -> str:
    """Write ``<adapter>-merged`` (or ``--output_dir``): base weights plus every adapter, as one plain model.
    ``reuse_existing`` (``swift infer --merge_lora true``) serves a merged folder already there, as ms-swift does;
    ``swift export`` refuses it without --exist_ok."""
    if args.quantized:
        raise SwiftError('refusing to merge into a quantized base: the adapter was trained with QLoRA '
                         f'(--quant_bits {args.quant_bits}), and merged 4/8-bit weights lose precision. '
                         'Pass --quant_bits 0 to merge into the unquantized base instead.')
    if args.quant_bits == 0 and args.quant_method:
        logger.warning('merging a QLoRA adapter into the unquantized base: outputs differ slightly from the '
                       'quantized model it was trained on')
    out_dir = args.output_dir or f"{args.adapters[-1].rstrip('/')}-merged"
    if reuse_existing and os.path.isfile(os.path.join(out_dir, 'config.json')):
        logger.info(f'using the merged model already in {out_dir}')
        return out_dir
    if not reuse_existing:
        _fresh_output_dir(args, out_dir)
    model, tokenizer, template = load_model_and_template(args)
    for adapter in args.adapters:
        model = merge_adapters(Swift.from_pretrained(model, adapter))
    save_model_atomically(model, tokenizer, out_dir, _exported_args(args, out_dir, model, template))
    logger.info(f'merged model saved to {out_dir}')
    return out_dir


def quantize(args: ExportArguments) -> str:
    """Write ``--model`` quantized: bnb while loading, gptq/awq/fp8 by llm-compressor after it. The folder's
    config.json records the quantization, so transformers (and swift infer) load it without further flags."""
    suffix = 'fp8' if args.quant_method == 'fp8' else f'{args.quant_method}-int{args.quant_bits}'
    out_dir = _fresh_output_dir(args, args.output_dir or f"{args.model.rstrip('/')}-{suffix}")
    model, tokenizer, template = load_model_and_template(args)
    if args.quant_method != 'bnb':
        samples = calibration_samples(args, template) if args.quant_method in CALIBRATED_METHODS else None
        quantize_model(model, args.quant_method, args.quant_bits, samples, args.quant_batch_size)
    save_model_atomically(model, tokenizer, out_dir, _exported_args(args, out_dir, model, template))
    logger.info(f'{args.quant_bits}-bit {args.quant_method} model saved to {out_dir}')
    return out_dir


def _fresh_output_dir(args: ExportArguments, out_dir: str) -> str:
    """``out_dir``, refused in one line when it exists, before any loading (ms-swift's check); --exist_ok true
    replaces it."""
    if os.path.exists(out_dir) and not args.exist_ok:
        raise SwiftError(f'--output_dir {out_dir} already exists: pass another --output_dir, or --exist_ok true to '
                         'replace it')
    return out_dir


def calibration_samples(args: ExportArguments, template) -> list[list[int]]:
    """Token ids of the first --quant_n_samples --dataset rows, encoded by the model's template (prompt and
    answer, as the model sees them). Rows over --max_length follow --truncation_strategy; with no --max_length
    they are cut at 2048 tokens, ms-swift's default for export."""
    max_length = args.max_length or 2048
    samples = []
    for row in load_dataset_rows(args, args.dataset):
        encoded = template.encode(row)
        if encoded is not None and encoded['input_ids']:  # None: --truncation_strategy delete dropped it
            samples.append(encoded['input_ids'][:max_length])
        if len(samples) == args.quant_n_samples:
            break
    logger.info(f'calibrating {args.quant_method} on {len(samples)} rows of {args.dataset}')
    return samples


def to_ollama(args: ExportArguments, model_dir: str) -> str:
    if not os.path.isdir(model_dir):
        raise SwiftError(f'--to_ollama needs a local model folder, got {model_dir}')
    tokenizer = load_tokenizer(model_dir, args.trust_remote_code)  # the chat format needs no weights
    detected = detect_model_meta(read_config(model_dir), args.model_type).pick_template(tokenizer.chat_template)
    template = build_template(args, tokenizer, detected)
    # Beside a folder this export just wrote (merged), else in --output_dir.
    out_dir = model_dir if model_dir != args.model else args.output_dir or f'{model_dir.rstrip("/")}-ollama'
    path = write_modelfile(model_dir, template, out_dir)
    logger.info(f'Ollama Modelfile written to {path}: ollama create NAME -f {path}')
    return path


def _exported_args(args: ExportArguments, out_dir: str, model, template) -> dict:
    """args.json of an exported model folder: a plain model that infer loads with --model."""
    return {'model': os.path.abspath(out_dir), 'model_type': model.model_meta.model_type,
            'template': template.template_type, 'system': template.default_system, 'train_type': 'full',
            'torch_dtype': args.torch_dtype, 'max_length': args.max_length, 'task_type': args.task_type,
            'num_labels': args.num_labels, 'problem_type': args.problem_type,
            # a classifier trained on plain text (--use_chat_template false) must read plain text again
            'use_chat_template': args.use_chat_template}
