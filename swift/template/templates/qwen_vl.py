"""Qwen2-VL and Qwen2.5-VL: ChatML, with each image as ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch
+ ``<|vision_end|>`` (videos alike with ``<|video_pad|>``), as their processor expands them."""
from dataclasses import replace

import torch

from ...utils import env
from ...utils.media import open_image
from ..registry import register_template
from ..vision import VisionTemplate
from .qwen import CHATML

VISION_START, VISION_END = '<|vision_start|>', '<|vision_end|>'
PADS = {'images': '<|image_pad|>', 'videos': '<|video_pad|>'}
GRIDS = {'images': 'image_grid_thw', 'videos': 'video_grid_thw'}
# transformers' mm_token_type_ids: 0 text, 1 image, 2 video
TOKEN_TYPES = {'images': 1, 'videos': 2}


class QwenVLTemplate(VisionTemplate):
    media = ('images',)

    @property
    def token_types(self) -> dict[int, int]:
        return {self.tokenizer.convert_tokens_to_ids(PADS[key]): kind for key, kind in TOKEN_TYPES.items()}

    @property
    def vision_token_ids(self) -> set[int]:
        return set(self.tokenizer.convert_tokens_to_ids([VISION_START, VISION_END, *PADS.values()]))

    def process_media(self, media: dict[str, list]) -> dict[str, torch.Tensor]:
        if not media['images']:
            return {}
        images = [open_image(image) for image in media['images']]
        return dict(self.processor.image_processor(images, return_tensors='pt', **self._pixel_bounds()))

    def expand(self, key: str, index: int, inputs: dict[str, torch.Tensor]) -> str:
        merge = self.processor.image_processor.merge_size
        count = int(inputs[GRIDS[key]][index].prod()) // merge ** 2
        return VISION_START + PADS[key] * count + VISION_END

    def _pixel_bounds(self) -> dict:
        """MIN_PIXELS / MAX_PIXELS where set; the image processor's own bounds otherwise."""
        low, high = env.image_pixel_bounds()
        if low is None and high is None:
            return {}
        size = self.processor.image_processor.size
        return {'size': {'shortest_edge': low or size['shortest_edge'], 'longest_edge': high or size['longest_edge']}}


QWEN_VL = replace(CHATML, default_system='You are a helpful assistant.')
register_template(replace(QWEN_VL, template_type='qwen2_vl'), QwenVLTemplate)
register_template(replace(QWEN_VL, template_type='qwen2_5_vl'), QwenVLTemplate)
