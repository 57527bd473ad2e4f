"""GRPO on image rows (seed 000's multimodal-open-r1 command): each prompt's pictures go through generation and
through every log-probability forward (the old policy's, the reference's and the loss's).

trl reads an ``images`` column itself, but renders and processes it with the processor's own chat template; ours
encodes prompts with the swift template (system prompt, placeholders where the row put them, --max_pixels bounds).
So the media are taken off the rows before trl sees them, encoded with each prompt here, and handed to trl in the
shape its own multimodal path uses: ``pixel_values``/``image_grid_thw`` for ``generate``, the same tensors with
``num_images`` for the log-prob forwards, which trl slices per micro-batch.
"""
import torch

from ..template.base import MEDIA_KEYS
from ..utils import SwiftError
from .media import is_multimodal, token_types

_IMAGE_TENSORS = ('pixel_values', 'image_grid_thw')


class PromptMediaMixin:
    """Put before ``trl.GRPOTrainer`` in the bases; the trainer has ``template``."""
    _prompt_media: list[dict] | None = None  # per row of the batch being generated: its images
    _batch_media: dict | None = None  # the encoded prompts' tensors, for the forwards of that batch

    def _generate_and_score_completions(self, inputs):
        media = [{key: row[key] for key in MEDIA_KEYS if row.get(key)} for row in inputs]
        if not any(media):
            return super()._generate_and_score_completions(inputs)
        self._check_media(media)
        self._prompt_media = media
        try:
            output = super()._generate_and_score_completions(
                [{k: v for k, v in row.items() if k not in MEDIA_KEYS} for row in inputs])
            batch_media = self._batch_media
        finally:
            self._prompt_media = self._batch_media = None
        # The loss's forward reads these from the batch (trl splits them per micro-batch by num_images).
        ids = torch.cat([output['prompt_ids'], output['completion_ids']], dim=1)
        return {**output, **batch_media, 'mm_token_type_ids': token_types(ids, self.template.token_types)}

    def _check_media(self, media: list[dict]) -> None:
        kinds = {key for row in media for key in row}
        if kinds - {'images'}:
            raise SwiftError(f'--rlhf_type grpo takes images; this batch has {sorted(kinds - {"images"})[0]}')
        if not is_multimodal(self.template):
            raise SwiftError(f'the {self.template.template_type} template takes text only, and GRPO rows have '
                             'images: train a multimodal model (e.g. Qwen2.5-VL) on them')
        if self.use_vllm:
            raise SwiftError('--use_vllm true with image rows is not supported here: vLLM would generate without '
                             'the images; leave --use_vllm false (generation on the trained model)')

    def _tokenize_prompts(self, prompts: list):
        media = self._prompt_media or [{}] * len(prompts)
        encoded = [self.template.encode_prompt(messages, row_media) for messages, row_media in zip(prompts, media)]
        if not any(prompt.media.get('pixel_values') is not None for prompt in encoded):
            return encoded, None, {}
        with_images = [prompt.media for prompt in encoded if prompt.media.get('pixel_values') is not None]
        tensors = {key: torch.cat([torch.as_tensor(m[key]) for m in with_images]) for key in _IMAGE_TENSORS}
        device = self.accelerator.device
        self._batch_media = {**{k: v.to(device) for k, v in tensors.items()},
                             'num_images': [len(p.media.get('image_grid_thw', [])) for p in encoded]}
        fields = {**tensors, 'mm_token_type_ids': [list(p.media['mm_token_type_ids']) for p in encoded]}
        return encoded, None, fields

    def _get_per_token_logps_and_entropies(self, model, input_ids, *args, **kwargs):
        """The old-policy and reference forwards trl runs while scoring get no media from trl (it saw none): add
        the batch's."""
        if self._batch_media is not None and kwargs.get('pixel_values') is None:
            kwargs.update(self._batch_media, mm_token_type_ids=token_types(input_ids, self.template.token_types))
        return super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)
