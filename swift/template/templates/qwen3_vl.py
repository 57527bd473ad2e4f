"""Qwen3-VL: ChatML without a default system prompt; images as in Qwen2-VL; a video as one
``<t seconds><|vision_start|>`` + pads + ``<|vision_end|>`` per temporal patch (two frames), timed at the middle of
the pair, as Qwen3-VL's processor writes it."""
from dataclasses import replace

import torch

from ..registry import register_template
from .qwen import CHATML, QWEN_TOOL_FORMAT
from .qwen_vl import PADS, VISION_END, VISION_START, Qwen2_5VLTemplate


class Qwen3VLTemplate(Qwen2_5VLTemplate):
    """Qwen2.5-VL's media handling; the seconds per temporal patch only time the video text (the model takes no
    ``second_per_grid_ts``)."""

    def _expand_placeholders(self, rendered, media: dict[str, list], inputs: dict):
        seconds = inputs.pop('second_per_grid_ts', None)  # for the text alone: never a model input here
        return super()._expand_placeholders(rendered, media, {**inputs, 'second_per_grid_ts': seconds})

    def expand(self, key: str, index: int, inputs: dict[str, torch.Tensor]) -> str:
        if key != 'videos':
            return super().expand(key, index, inputs)
        patches, height, width = inputs['video_grid_thw'][index].tolist()
        pads = PADS[key] * (height * width // self.processor.image_processor.merge_size ** 2)
        step = float(inputs['second_per_grid_ts'][index])  # seconds per temporal patch
        temporal = self.processor.image_processor.temporal_patch_size
        # a patch's time: the mean of its first and last frame's, frames spaced step / temporal apart
        times = [step * (patch + (temporal - 1) / (2 * temporal)) for patch in range(patches)]
        return ''.join(f'<{time:.1f} seconds>{VISION_START}{pads}{VISION_END}' for time in times)


register_template(replace(CHATML, template_type='qwen3_vl', default_system=None, tool_format=QWEN_TOOL_FORMAT,
                          agent_template='hermes', thinking_prefix='<think>\n'), Qwen3VLTemplate)
