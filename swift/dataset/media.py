"""A row's media: the ``images``, ``videos`` and ``audios`` columns and the ``<image>``, ``<video>``, ``<audio>``
placeholders that say where each goes in the conversation.

Media come as columns (``image``/``video``/``audio`` are accepted too, one item or a list), as OpenAI content parts
inside a message (``{'type': 'image_url', 'image_url': {'url': ...}}``, ``{'type': 'image', 'image': ...}``), or in
ms-swift's older inline form ``<img>path-or-URL</img>``. Images are checked here, so a missing or corrupt file stops
the run before training with the row's file and line: a local path (absolute, or relative to the dataset file's
folder), base64, a ``data:`` URL, bytes, a ``{'bytes', 'path'}`` record or a PIL image; an http(s) URL is fetched
(its bytes replace it). Audio comes in the same forms but a PIL image; its header is read here (soundfile). A row
without placeholders gets one per item at the start of its first user message, as in ms-swift; otherwise
placeholders and items must match in number.
"""
import os
import re

from ..hub import fetch_url
from ..utils import SwiftError
from ..utils.media import MediaError, describe, is_url, load_audio, open_image
from .errors import RowError

MEDIA = {'images': 'image', 'videos': 'video', 'audios': 'audio'}
PLACEHOLDERS = {key: f'<{kind}>' for key, kind in MEDIA.items()}
_INLINE_IMAGE = re.compile(r'<img>(.*?)</img>', re.DOTALL)
# OpenAI's content part types, and ms-swift's, by the media column they belong to.
_PART_TYPES = {'image': 'images', 'image_url': 'images', 'video': 'videos', 'video_url': 'videos', 'audio': 'audios',
               'audio_url': 'audios', 'input_audio': 'audios'}


def take_media(messages: list[dict], extra: dict, base_dir: str | None) -> dict[str, list]:
    """Move the row's media out of ``extra`` and the messages' content parts into checked lists, one per kind,
    and make the placeholders agree with them. Messages are rewritten in place to plain text."""
    media = {key: _as_list(extra.pop(key, None) if key in extra else extra.pop(kind, None), key)
             for key, kind in MEDIA.items()}
    for message in messages:
        if isinstance(message.get('content'), list):
            message['content'] = _parts_to_text(message['content'], media)
    if not media['images']:
        media['images'] = _inline_images(messages)
    base = base_dir or os.getcwd()
    for key, items in media.items():
        for i, item in enumerate(items):
            items[i] = _checked(key, i, item, base)
        if items:
            _match_placeholders(messages, key, len(items))
    return {key: items for key, items in media.items() if items}


def _as_list(value, key: str) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str | bytes | dict) or key == 'images':
        return [value]  # one item given bare
    raise RowError(f'field {key!r} must be a list')


def _parts_to_text(parts: list, media: dict[str, list]) -> str:
    """OpenAI content parts as text with a placeholder where each media part stood."""
    texts = []
    for i, part in enumerate(parts):
        kind = part.get('type') if isinstance(part, dict) else None
        if kind == 'text' and isinstance(part.get('text'), str):
            texts.append(part['text'])
        elif kind in _PART_TYPES:
            key = _PART_TYPES[kind]
            media[key].append(_part_source(part, kind))
            texts.append(PLACEHOLDERS[key])
        else:
            raise RowError(f"content part {i} must be text, image, image_url, video or audio, got {kind!r}")
    return ''.join(texts)


def _part_source(part: dict, kind: str):
    value = part.get(kind)
    if isinstance(value, dict):  # {'url': ...} (OpenAI), {'data': ..., 'format': ...} (input_audio)
        value = value.get('url') or value.get('data')
    if value is None:
        raise RowError(f'a content part of type {kind} needs its {kind}')
    return value


def _inline_images(messages: list[dict]) -> list:
    """ms-swift's ``<img>...</img>``: each becomes an ``<image>`` placeholder and an image."""
    images = []
    for message in messages:
        if isinstance(message['content'], str) and '<img>' in message['content']:
            images += _INLINE_IMAGE.findall(message['content'])
            message['content'] = _INLINE_IMAGE.sub(PLACEHOLDERS['images'], message['content'])
    return images


def _checked(key: str, index: int, item, base: str):
    """``item`` ready for a template: local paths absolute, URLs fetched; images verified."""
    try:
        if isinstance(item, list) and key == 'videos':  # a video given as its frames
            return [_checked('images', index, frame, base) for frame in item]
        item = _fetched(_resolved(item, base))
        if key == 'images':
            open_image(item, verify_only=True)
        elif key == 'audios':
            load_audio(item, verify_only=True)
        elif isinstance(item, str) and not os.path.isfile(item):
            raise MediaError('no such file')
        return item
    except MediaError as err:
        where = f' (relative to {base})' if isinstance(item, str) and not os.path.isabs(item) else ''
        raise RowError(f'{key}[{index}] {describe(item, MEDIA[key])}: {err}{where}') from None


def _resolved(item, base: str):
    """A relative path read from the dataset file's folder (else from the working folder); anything else as is."""
    if isinstance(item, dict) and not item.get('bytes') and isinstance(item.get('path'), str):
        item = item['path']
    if not isinstance(item, str) or is_url(item) or item.startswith('data:') or len(item) > 4096:
        return item
    path = os.path.expanduser(item)
    for candidate in (os.path.join(base, path), path):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return item


def _fetched(item):
    if not is_url(item):
        return item
    try:
        return fetch_url(item)
    except SwiftError as err:
        raise MediaError(str(err)) from None


def _match_placeholders(messages: list[dict], key: str, count: int) -> None:
    tag = PLACEHOLDERS[key]
    found = sum(message['content'].count(tag) for message in messages if isinstance(message['content'], str))
    if found == 0:  # as ms-swift: media without placeholders go before the first user message's text
        first_user = next((m for m in messages if m['role'] == 'user'), None)
        if first_user is None:
            raise RowError(f'{count} {key} but no user message to put them in')
        first_user['content'] = tag * count + first_user['content']
    elif found != count:
        raise RowError(f'{found} {tag} placeholder{"s" * (found != 1)} but {count} {key}: give one per item')
