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
from .base import IGNORE_INDEX, MEDIA_KEYS, Rendered, Template

PLACEHOLDERS = {'images': '<image>', 'videos': '<video>', 'audios': '<audio>'}
_PLACEHOLDER = re.compile('|'.join(map(re.escape, PLACEHOLDERS.values())))
_KIND_OF = {tag: key for key, tag in PLACEHOLDERS.items()}
# Keys an encoded row holds besides its token lists: the processor's tensors, batched by concatenation.
MEDIA_TENSOR_KEYS = ('pixel_values', 'image_grid_thw', 'pixel_values_videos', 'video_grid_thw', 'second_per_grid_ts')


class VisionTemplate(Template):
    """A chat template whose media placeholders expand into vision tokens. A family says which media it takes
    (``media``), turns a row's media into model inputs (``process_media``) and spells each placeholder's tokens
    (``expand``); ``token_types`` maps its media token ids to transformers' ``mm_token_type_ids`` values."""
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

    def encode_pair(self, row: dict[str, Any]) -> dict[str, list[int]] | None:
        self._text_only(row, 'preference pairs')
        return super().encode_pair(row)

    def encode_completion(self, row: dict[str, Any]) -> dict[str, list[int]] | None:
        self._text_only(row, 'KTO rows')
        return super().encode_completion(row)

    def _text_only(self, row: dict[str, Any], what: str) -> None:
        """The alignment encodings hand on ids only, so a row's pixels would be dropped without a word."""
        media = [key for key in MEDIA_KEYS if row.get(key)]
        if media:
            raise SwiftError(f'{what} with {media[0]} are not supported yet (swift rlhf trains on text rows only)')

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


def _moved(position: int, shifts: list[tuple[int, int]]) -> int:
    """Where ``position`` of the rendered text lies once every placeholder ending at or before it is expanded."""
    return position + sum(delta for end, delta in shifts if end <= position)
