"""Qwen3-VL: Qwen2.5-VL's layout (images and video before a language model with 3-D positions) on a Qwen3
language model; the vision tower also feeds features of its early blocks into the first LM layers (deepstack), so
those mergers belong to the aligner. Each video frame pair stands alone in the text, behind its timestamp."""
from functools import partial

import torch
from transformers import AutoModelForImageTextToText, PreTrainedModel, Qwen3VLProcessor

from ..processor import build_processor, image_only
from ..registry import ModelMeta, ModelParts, register_model
from .qwen_vl import packed_rope_index

QWEN3_VL_PARTS = ModelParts(language_model=('model.language_model', 'lm_head'),
                            aligner=('model.visual.merger', 'model.visual.deepstack_merger_list'),
                            vision_tower=('model.visual',))
ImageOnlyQwen3VLProcessor = image_only(Qwen3VLProcessor, __name__)


def frame_grids(video_grid_thw: torch.Tensor | None) -> torch.Tensor | None:
    """One (1, h, w) grid per temporal patch: Qwen3-VL's text holds each frame pair as its own run of video tokens,
    as its ``get_rope_index`` splits the grids itself."""
    if video_grid_thw is None:
        return None
    grids = torch.repeat_interleave(video_grid_thw, video_grid_thw[:, 0], dim=0)
    grids[:, 0] = 1
    return grids


def _packed_positions(module: PreTrainedModel, args: tuple, kwargs: dict):
    # Padding-free and packed batches carry 1-D positions that restart per sequence; M-RoPE needs 3-D ones.
    position_ids, types = kwargs.get('position_ids'), kwargs.get('mm_token_type_ids')
    if position_ids is None or position_ids.dim() != 2 or types is None or kwargs.get('input_ids') is None:
        return None
    kwargs['position_ids'] = packed_rope_index(module.model, kwargs['input_ids'], position_ids, types,
                                               kwargs.get('image_grid_thw'), frame_grids(kwargs.get('video_grid_thw')))
    return args, kwargs


def patch_packed_positions(model: PreTrainedModel) -> None:
    model.register_forward_pre_hook(_packed_positions, with_kwargs=True)


def _register(model_type: str, architecture: str) -> None:
    register_model(ModelMeta(model_type, config_model_types=[model_type], architectures=[architecture],
                             template='qwen3_vl', media=('image', 'video'), parts=QWEN3_VL_PARTS,
                             model_class=AutoModelForImageTextToText,
                             load_processor=partial(build_processor, ImageOnlyQwen3VLProcessor),
                             patch_model=patch_packed_positions))


_register('qwen3_vl', 'Qwen3VLForConditionalGeneration')
# Qwen3-VL-30B-A3B and 235B-A22B: the same model with mixture-of-experts MLPs in the language model
_register('qwen3_vl_moe', 'Qwen3VLMoeForConditionalGeneration')
