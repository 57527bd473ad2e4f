"""Templates of models that see images and video.

The conversation is rendered as text with the dataset's ``<image>`` and ``<video>`` placeholders still in it, as a
text template renders it. Each placeholder is then replaced by the model's own vision tokens, as many as the image
processor says the picture takes, and the loss spans move with the text. The whole text is tokenized once, so the
ids equal those of the model's processor applied to its chat template; vision tokens never carry loss.
"""
import re
from typing import Any

import torch

from ..utils import SwiftError
from .base import IGNORE_INDEX, MEDIA_KEYS, Rendered, Template, last_loss_span

PLACEHOLDERS = {'images': '<image>', 'videos': '<video>', 'audios': '<audio>'}
_PLACEHOLDER = re.compile('|'.join(map(re.escape, PLACEHOLDERS.values())))
_KIND_OF = {tag: key for key, tag in PLACEHOLDERS.items()}
# Keys an encoded row holds besides its token lists: the processor's tensors, batched by concatenation.
MEDIA_TENSOR_KEYS = ('pixel_values', 'image_grid_thw', 'pixel_values_videos', 'video_grid_thw', 'second_per_grid_ts',
                     'input_features', 'feature_attention_mask')


class VisionTemplate(Template):
    """A chat template whose media placeholders expand into vision tokens. A family says which media it takes
    (``media``), turns a row's media into model inputs (``process_media``) and spells each placeholder's tokens
    (``expand``); ``token_types`` maps its media token ids to transformers' ``mm_token_type_ids`` values."""
    supports_weighted_loss_scale = False  # its loss spans are found or moved after rendering
    media: tuple[str, ...] = ()

    def process_media(self, media: dict[str, list]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def expand(self, key: str, index: int, inputs: dict[str, torch.Tensor]) -> str:
        raise NotImplementedError

    @property
    def token_types(self) -> dict[int, int]:
        raise NotImplementedError

    @property
    def vision_token_ids(self) -> set[int]:
        """Ids that are never trained on: the media tokens and the markers around them."""
        raise NotImplementedError

    def encode(self, row: dict[str, Any], add_generation_prompt: bool = False) -> dict[str, Any] | None:
        media = {key: list(row.get(key) or []) for key in MEDIA_KEYS}
        unsupported = [key for key in MEDIA_KEYS if media[key] and key not in self.media]
        if unsupported:
            raise SwiftError(f'the {self.template_type} template takes {", ".join(self.media)}, not {unsupported[0]}')
        rendered = self._render_row(row['messages'], add_generation_prompt)
        inputs = self.process_media(media)
        encoded = self._tokenize(self._expand_placeholders(rendered, media, inputs))
        if not self.use_chat_template and self.tokenizer.eos_token_id is not None:
            encoded = {key: value + [self.tokenizer.eos_token_id] for key, value in encoded.items()}
        vision = self.vision_token_ids
        encoded['labels'] = [IGNORE_INDEX if token in vision else label
                             for token, label in zip(encoded['input_ids'], encoded['labels'])]
        encoded['mm_token_type_ids'] = [self.token_types.get(token, 0) for token in encoded['input_ids']]
        return self._fit({**encoded, **inputs}, has_media=bool(inputs))

    def _pair(self, chosen: dict | None, rejected: dict | None) -> dict[str, Any] | None:
        """Text pairs plus the pixels: both answers follow one prompt where both sides have the same media;
        otherwise (``rejected_images``, ...) each answer keeps its own prompt, ``rejected_prompt_ids``, and its own
        ``rejected_``-prefixed media tensors."""
        pair = super()._pair(chosen, rejected)
        if pair is None:
            return None
        chosen_media, rejected_media = media_tensors(chosen), media_tensors(rejected)
        if _same_media(chosen_media, rejected_media):
            self._check_answer_text(pair['chosen_ids'] + pair['rejected_ids'])
            return {**pair, **chosen_media}
        sides = {}
        for side, encoded in (('chosen', chosen), ('rejected', rejected)):
            start, end = last_loss_span(encoded['labels'])
            sides[side] = (encoded['input_ids'][:start], encoded['input_ids'][start:end])
            self._check_answer_text(sides[side][1])
        return {'prompt_ids': sides['chosen'][0], 'chosen_ids': sides['chosen'][1],
                'rejected_prompt_ids': sides['rejected'][0], 'rejected_ids': sides['rejected'][1], **chosen_media,
                **{f'rejected_{key}': value for key, value in rejected_media.items()}}

    def _completion(self, encoded: dict | None) -> dict[str, Any] | None:
        completion = super()._completion(encoded)
        if completion is None:
            return None
        self._check_answer_text(completion['completion_ids'])
        return {**completion, **media_tensors(encoded)}

    def _check_answer_text(self, answer_ids: list[int]) -> None:
        """Alignment scores the final answer's tokens after a prompt that holds every picture: media inside the
        answer would be scored as text."""
        if self.vision_token_ids & set(answer_ids):
            raise SwiftError('an image or video stands in the final answer: alignment rows take media in the '
                             'prompt only')

    def _render_row(self, messages: list[dict], add_generation_prompt: bool) -> Rendered:
        if not self.use_chat_template:  # pre-training: the contents as plain text, all of it in the loss
            text = ''.join(m['content'] for m in messages if m['role'] != 'system')
            return Rendered(text, [(0, len(text))])
        if add_generation_prompt and messages and messages[-1]['role'] == 'assistant':
            messages = messages[:-1]
        return self.render(messages, add_generation_prompt=add_generation_prompt)

    def _expand_placeholders(self, rendered: Rendered, media: dict[str, list], inputs: dict) -> Rendered:
        """``rendered`` with each placeholder replaced by its tokens' text, the loss spans moved along."""
        parts, shifts, position = [], [], 0
        counts = dict.fromkeys(PLACEHOLDERS, 0)
        for match in _PLACEHOLDER.finditer(rendered.text):
            key = _KIND_OF[match.group()]
            if key not in self.media:
                continue  # e.g. '<audio>' in the text of a model that hears nothing: plain text
            if counts[key] >= len(media[key]):
                raise SwiftError(f'more {match.group()} placeholders than {key} ({len(media[key])})')
            expansion = self.expand(key, counts[key], inputs)
            counts[key] += 1
            parts += [rendered.text[position:match.start()], expansion]
            shifts.append((match.end(), len(expansion) - len(match.group())))
            position = match.end()
        missing = [key for key in self.media if counts[key] != len(media[key])]
        if missing:
            raise SwiftError(f'{len(media[missing[0]])} {missing[0]} but {counts[missing[0]]} '
                             f'{PLACEHOLDERS[missing[0]]} placeholders in the conversation')
        text = ''.join(parts) + rendered.text[position:]
        return Rendered(text, [(_moved(start, shifts), _moved(end, shifts)) for start, end in rendered.loss_spans])

    def _fit(self, encoded: dict[str, Any], has_media: bool) -> dict[str, Any] | None:
        """--max_length: a row with media is never cut (its vision tokens must all stay), only dropped."""
        if has_media and self.max_length is not None and len(encoded['input_ids']) > self.max_length:
            return None
        return self._truncate(encoded)


def media_tensors(encoded: dict[str, Any]) -> dict[str, Any]:
    """The processor's tensors of an encoded row (none for a text row)."""
    return {key: encoded[key] for key in MEDIA_TENSOR_KEYS if encoded.get(key) is not None}


def _same_media(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)


def _moved(position: int, shifts: list[tuple[int, int]]) -> int:
    """Where ``position`` of the rendered text lies once every placeholder ending at or before it is expanded."""
    return position + sum(delta for end, delta in shifts if end <= position)
