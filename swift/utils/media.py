"""Images from what datasets and requests hold: a PIL image, bytes, a ``{'bytes', 'path'}`` record (Hugging Face's
Image feature, as parquet files store it), a local path, a ``data:`` URL or bare base64. Local only: an http(s) URL
is fetched by ``hub.fetch_url`` first. Every failure is a ``MediaError`` whose message says why, in one line.
"""
import base64
import binascii
import io
import os
import re

from PIL import Image, UnidentifiedImageError

_DATA_URL = re.compile(r'data:[\w/+.-]*;base64,(.*)', re.DOTALL)
# Longer than any path a file system accepts: such a string can only be base64.
_MAX_PATH = 4096


class MediaError(ValueError):
    """A media reference that cannot be read; the message names the reason."""


def is_url(source) -> bool:
    return isinstance(source, str) and source.startswith(('http://', 'https://'))


def describe(source) -> str:
    """A short name for ``source`` in messages: the path or URL itself, else its kind."""
    if isinstance(source, str) and len(source) < 200 and not source.startswith('data:'):
        return repr(source)
    if isinstance(source, dict) and isinstance(source.get('path'), str) and not source.get('bytes'):
        return repr(source['path'])
    return f'a {type(source).__name__} image' if not isinstance(source, str) else 'a base64 image'


def image_bytes_or_path(source) -> bytes | str | Image.Image:
    """What ``source`` holds, before decoding: bytes, a local path or a PIL image."""
    if isinstance(source, Image.Image | bytes | bytearray):
        return source
    if isinstance(source, dict):
        return source.get('bytes') or source.get('path') or _raise('a record with neither bytes nor a path')
    if not isinstance(source, str):
        raise MediaError(f'expected a path, URL, base64 string or image, got {type(source).__name__}')
    if is_url(source):
        raise MediaError(f'{source} is a URL: fetch it first')
    match = _DATA_URL.match(source)
    if match is not None:
        return _b64decode(match.group(1))
    if len(source) < _MAX_PATH and os.path.isfile(os.path.expanduser(source)):
        return os.path.expanduser(source)
    if len(source) < 256 and not _looks_base64(source):
        raise MediaError('no such file')
    return _b64decode(source)


def open_image(source, verify_only: bool = False) -> Image.Image:
    """``source`` decoded to an RGB image. ``verify_only`` checks the file's structure without decoding the pixels
    (fast, for checking a whole dataset before training; it returns the unconverted image)."""
    data = image_bytes_or_path(source)
    if isinstance(data, Image.Image):
        return data if verify_only else data.convert('RGB')
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data)
        if verify_only:
            image.verify()
            return image
        return image.convert('RGB')
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MediaError(f'not a readable image ({str(err).splitlines()[0] or type(err).__name__})') from None


def _looks_base64(text: str) -> bool:
    return bool(re.fullmatch(r'[A-Za-z0-9+/=\s]+', text)) and len(text.strip()) % 4 == 0


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise MediaError('neither an existing file nor valid base64') from None


def _raise(reason: str):
    raise MediaError(reason)
