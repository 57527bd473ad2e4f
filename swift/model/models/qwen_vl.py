"""Qwen2-VL and Qwen2.5-VL: images and video in front of a Qwen2 language model, with 3-D (M-RoPE) positions."""
from functools import partial

import torch
from transformers import (AutoModelForImageTextToText, PreTrainedModel, Qwen2_5_VLProcessor, Qwen2VLProcessor)

from ..processor import build_processor, image_only
from ..registry import ModelMeta, ModelParts, register_model

# transformers 5 names: the vision tower holds its merger (the aligner); the language model sits beside it.
QWEN_VL_PARTS = ModelParts(language_model=('model.language_model', 'lm_head'), aligner=('model.visual.merger',),
                           vision_tower=('model.visual',))
ImageOnlyQwen2VLProcessor = image_only(Qwen2VLProcessor, __name__)
ImageOnlyQwen2_5_VLProcessor = image_only(Qwen2_5_VLProcessor, __name__)


def packed_rope_index(model: PreTrainedModel, input_ids: torch.Tensor, position_ids: torch.Tensor,
                      mm_token_type_ids: torch.Tensor, image_grid_thw: torch.Tensor | None = None,
                      video_grid_thw: torch.Tensor | None = None,
                      second_per_grid_ts: torch.Tensor | None = None) -> torch.Tensor:
    """(3, batch, n) M-RoPE positions of rows that pack several sequences, each starting where the 1-D
    ``position_ids`` restart at 0: every sequence gets the positions the model's ``get_rope_index`` gives it alone."""
    grids = {1: _queue(image_grid_thw), 2: _queue(video_grid_thw)}
    seconds = _queue(second_per_grid_ts)
    rows = []
    for ids, types, positions in zip(input_ids, mm_token_type_ids, position_ids):
        starts = [*torch.nonzero(positions == 0).flatten().tolist(), len(ids)]
        segments = []
        for start, end in zip(starts[:-1], starts[1:]):
            kinds = _media_runs(types[start:end])
            images, videos = _take(grids[1], kinds.count(1)), _take(grids[2], kinds.count(2))
            segment, _ = model.get_rope_index(ids[None, start:end], types[None, start:end], image_grid_thw=images,
                                              video_grid_thw=videos,
                                              second_per_grid_ts=_take(seconds, kinds.count(2)) if seconds else None)
            segments.append(segment[:, 0])
        rows.append(torch.cat(segments, dim=1))
    return torch.stack(rows, dim=1)


def _queue(tensor: torch.Tensor | None) -> list:
    return [] if tensor is None else list(tensor)


def _take(items: list, count: int) -> torch.Tensor | None:
    taken = [items.pop(0) for _ in range(count)]
    return torch.stack(taken) if taken else None


def _media_runs(types: torch.Tensor) -> list[int]:
    """The modality of each run of media tokens, in order (1 image, 2 video): one run per image or video."""
    values = types.tolist()
    return [t for i, t in enumerate(values) if t and (i == 0 or values[i - 1] != t)]


def _packed_positions(module: PreTrainedModel, args: tuple, kwargs: dict):
    # Padding-free and packed batches carry 1-D positions that restart per sequence; M-RoPE needs 3-D ones.
    position_ids, types = kwargs.get('position_ids'), kwargs.get('mm_token_type_ids')
    if position_ids is None or position_ids.dim() != 2 or types is None or kwargs.get('input_ids') is None:
        return None
    kwargs['position_ids'] = packed_rope_index(module.model, kwargs['input_ids'], position_ids, types,
                                               kwargs.get('image_grid_thw'), kwargs.get('video_grid_thw'),
                                               kwargs.get('second_per_grid_ts'))
    return args, kwargs


def patch_packed_positions(model: PreTrainedModel) -> None:
    model.register_forward_pre_hook(_packed_positions, with_kwargs=True)


def _register(model_type: str, architecture: str, processor_cls: type) -> None:
    register_model(ModelMeta(model_type, config_model_types=[model_type], architectures=[architecture],
                             template=model_type, media=('image', 'video'), parts=QWEN_VL_PARTS,
                             model_class=AutoModelForImageTextToText,
                             load_processor=partial(build_processor, processor_cls),
                             patch_model=patch_packed_positions))


_register('qwen2_vl', 'Qwen2VLForConditionalGeneration', ImageOnlyQwen2VLProcessor)
_register('qwen2_5_vl', 'Qwen2_5_VLForConditionalGeneration', ImageOnlyQwen2_5_VLProcessor)
