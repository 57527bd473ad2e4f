"""Qwen2-VL and Qwen2.5-VL: ChatML, with each image as ``<|vision_start|>`` + one ``<|image_pad|>`` per merged patch
+ ``<|vision_end|>`` (videos alike with ``<|video_pad|>``), as their processor expands them."""
from dataclasses import replace

import torch

from ...utils import SwiftError, env
from ...utils.media import MediaError, describe, open_image, video_frames
from ..registry import register_template
from ..vision import VisionTemplate
from .qwen import CHATML

VISION_START, VISION_END = '<|vision_start|>', '<|vision_end|>'
PADS = {'images': '<|image_pad|>', 'videos': '<|video_pad|>'}
GRIDS = {'images': 'image_grid_thw', 'videos': 'video_grid_thw'}
# transformers' mm_token_type_ids: 0 text, 1 image, 2 video
TOKEN_TYPES = {'images': 1, 'videos': 2}


class QwenVLTemplate(VisionTemplate):
    media = ('images', 'videos')
    # Qwen2.5-VL spaces a video's temporal positions by seconds (its processor's second_per_grid_ts); Qwen2-VL not.
    timed_video = False

    @property
    def token_types(self) -> dict[int, int]:
        return {self.tokenizer.convert_tokens_to_ids(PADS[key]): kind for key, kind in TOKEN_TYPES.items()}

    @property
    def vision_token_ids(self) -> set[int]:
        return set(self.tokenizer.convert_tokens_to_ids([VISION_START, VISION_END, *PADS.values()]))

    def process_media(self, media: dict[str, list]) -> dict[str, torch.Tensor]:
        inputs = {}
        if media['images']:
            images = [_opened(image) for image in media['images']]
            low, high = env.image_pixel_bounds()
            inputs.update(self.processor.image_processor(images, return_tensors='pt', **self._size(low, high)))
        if media['videos']:
            inputs.update(self._videos(media['videos']))
        return inputs

    def _videos(self, videos: list) -> dict[str, torch.Tensor]:
        """Each video's frames through the image processor (the video processor needs torchvision), two by two
        into temporal patches: the layout of transformers' Qwen2-VL video processor."""
        image_processor = self.processor.image_processor
        fps, min_frames, max_frames = env.video_sampling()
        size = self._size(*env.video_pixel_bounds())
        pixels, grids, seconds = [], [], []
        for video in videos:
            try:
                frames, rate = video_frames(video, fps, min_frames, max_frames, image_processor.temporal_patch_size)
            except MediaError as err:
                raise SwiftError(f'video {describe(video)}: {err}') from None
            out = image_processor(frames, return_tensors='pt', **size)
            pixels.append(_temporal_patches(out['pixel_values'], len(frames), image_processor.temporal_patch_size))
            grids.append([len(frames) // image_processor.temporal_patch_size, *out['image_grid_thw'][0, 1:].tolist()])
            seconds.append(image_processor.temporal_patch_size / rate)
        inputs = {'pixel_values_videos': torch.cat(pixels), 'video_grid_thw': torch.tensor(grids)}
        if self.timed_video:
            inputs['second_per_grid_ts'] = torch.tensor(seconds)
        return inputs

    def expand(self, key: str, index: int, inputs: dict[str, torch.Tensor]) -> str:
        merge = self.processor.image_processor.merge_size
        count = int(inputs[GRIDS[key]][index].prod()) // merge ** 2
        return VISION_START + PADS[key] * count + VISION_END

    def _size(self, low: int | None, high: int | None) -> dict:
        """The image processor's ``size`` for pixel bounds (MIN_PIXELS/MAX_PIXELS, or a video's per frame); its
        own bounds where unset."""
        if low is None and high is None:
            return {}
        size = self.processor.image_processor.size
        return {'size': {'shortest_edge': low or size['shortest_edge'], 'longest_edge': high or size['longest_edge']}}


class Qwen2_5VLTemplate(QwenVLTemplate):
    timed_video = True


def _opened(image):
    try:  # rows were checked while loading; a file can still change, or decode worse than its header promised
        return open_image(image)
    except MediaError as err:
        raise SwiftError(f'image {describe(image)}: {err}') from None


def _temporal_patches(pixels: torch.Tensor, frames: int, temporal: int) -> torch.Tensor:
    """Image patches of ``frames`` same-sized frames, (frames * n, C * temporal * p * p) with each frame repeated
    over the temporal slots, regrouped so that each patch holds ``temporal`` consecutive frames."""
    n = pixels.shape[0] // frames
    per_frame = pixels.view(frames, n, 3, temporal, -1)[:, :, :, 0]  # (frames, n, C, p*p): the frame once
    grouped = per_frame.view(frames // temporal, temporal, n, 3, -1).permute(0, 2, 3, 1, 4)
    return grouped.reshape(frames // temporal * n, -1)


QWEN_VL = replace(CHATML, default_system='You are a helpful assistant.')
register_template(replace(QWEN_VL, template_type='qwen2_vl'), QwenVLTemplate)
register_template(replace(QWEN_VL, template_type='qwen2_5_vl'), Qwen2_5VLTemplate)
