"""Merge LoRA adapters into their base weights and save a plain transformers model folder."""
import os
import shutil

from peft import PeftModel
from transformers import PreTrainedModel

from ..utils import SwiftError
from ..utils.io import write_json


def merge_adapters(model: PeftModel) -> PreTrainedModel:
    """Fold every LoRA delta into the base weights; the result needs no peft to load."""
    if not isinstance(model, PeftModel):  # swift's adapter and reft edit activations: no weight to fold into
        raise SwiftError(f"{model.swift_adapter_config['swift_type']} checkpoints cannot be merged into the base "
                         'weights: serve them with --adapters CKPT')
    return model.merge_and_unload()


def save_model_atomically(model: PreTrainedModel, tokenizer, out_dir: str, args: dict) -> str:
    """safetensors weights, tokenizer and args.json, written beside ``out_dir`` and renamed into place."""
    out_dir = os.path.abspath(out_dir)
    staging = out_dir + '.partial'
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    write_json(os.path.join(staging, 'args.json'), args)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir
