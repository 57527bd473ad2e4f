"""``swift export``: merge LoRA adapters into the base model, and push a checkpoint to a hub.

    swift export --adapters output/vx-xxx/checkpoint-xxx --merge_lora true
    swift export --adapters output/vx-xxx/checkpoint-xxx --push_to_hub true --hub_model_id me/my-model
"""
import os

from ..arguments import ExportArguments
from ..export import merge_adapters, save_model_atomically
from ..hub import push_folder
from ..tuners import Swift
from ..utils import SwiftError, get_logger
from .common import apply_checkpoint_args, load_model_and_template, to_arguments

logger = get_logger()


def export_main(args: ExportArguments | list[str] | None = None) -> dict:
    args = apply_checkpoint_args(to_arguments(ExportArguments, args))
    result = {}
    if args.merge_lora:
        result['merged_dir'] = merge_lora(args)
    if args.push_to_hub:
        folder = result.get('merged_dir') or (args.adapters[0] if args.adapters else args.model)
        hub = push_folder(folder, args.hub_model_id, use_hf=args.use_hf, token=args.hub_token,
                          private=args.hub_private_repo, commit_message=args.commit_message)
        logger.info(f'pushed {folder} to {hub} as {args.hub_model_id}')
    return result


def merge_lora(args) -> str:
    """Write ``<adapter>-merged`` (or ``--output_dir``): base weights plus every adapter, as one plain model."""
    if args.quantized:
        raise SwiftError('refusing to merge into a quantized base: the adapter was trained with QLoRA '
                         f'(--quant_bits {args.quant_bits}), and merged 4/8-bit weights lose precision. '
                         'Pass --quant_bits 0 to merge into the unquantized base instead.')
    if args.quant_bits == 0 and args.quant_method:
        logger.warning('merging a QLoRA adapter into the unquantized base: outputs differ slightly from the '
                       'quantized model it was trained on')
    model, tokenizer, template = load_model_and_template(args)
    for adapter in args.adapters:
        model = merge_adapters(Swift.from_pretrained(model, adapter))
    out_dir = args.output_dir or f"{args.adapters[-1].rstrip('/')}-merged"
    saved = {'model': os.path.abspath(out_dir), 'model_type': model.model_meta.model_type,
             'template': template.template_type, 'system': template.default_system, 'train_type': 'full',
             'torch_dtype': args.torch_dtype, 'max_length': args.max_length}
    save_model_atomically(model, tokenizer, out_dir, saved)
    logger.info(f'merged model saved to {out_dir}')
    return out_dir
