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


def describe(source, kind: str = 'image') -> str:
    """A short name for ``source`` in messages: the path or URL itself, else its kind (``a base64 audio``)."""
    if isinstance(source, str) and len(source) < 200 and not source.startswith('data:'):
        return repr(source)
    if isinstance(source, dict) and isinstance(source.get('path'), str) and not source.get('bytes'):
        return repr(source['path'])
    return f'a {type(source).__name__} {kind}' if not isinstance(source, str) else f'a base64 {kind}'


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


def video_frames(source, fps: float, min_frames: int, max_frames: int, multiple: int) -> tuple[list[Image.Image], float]:
    """A video's frames, sampled at ``fps`` within ``[min_frames, max_frames]`` and padded (the last frame again) to
    a multiple of ``multiple``, with the rate they were sampled at. ``source`` is a list of frame images (taken as
    sampled at ``fps``) or a video file, which PyAV decodes."""
    if isinstance(source, (list, tuple)):
        frames, rate = [open_image(frame) for frame in source], fps
        if not frames:
            raise MediaError('a video needs at least one frame')
        frames = _uniform(frames, min(len(frames), max_frames))
    else:
        frames, rate = _decoded(source, fps, min_frames, max_frames)
    size = frames[0].size  # a video's frames share one size; frames given one by one may not
    frames = [frame if frame.size == size else frame.resize(size) for frame in frames]
    frames += frames[-1:] * (-len(frames) % multiple)
    return frames, rate


def _decoded(source, fps: float, min_frames: int, max_frames: int) -> tuple[list[Image.Image], float]:
    try:
        import av
    except ImportError:
        raise MediaError("reading a video file needs PyAV (pip install 'swift[video]'); or give the video as a list "
                         'of frame images') from None
    data = image_bytes_or_path(source) if not isinstance(source, str) or not os.path.isfile(source) else source
    try:
        with av.open(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data) as container:
            stream = container.streams.video[0]
            frames = [frame.to_image().convert('RGB') for frame in container.decode(stream)]
            native = float(stream.average_rate or fps)
    except (av.error.FFmpegError, IndexError, OSError) as err:
        raise MediaError(f'not a readable video ({str(err).splitlines()[0] or type(err).__name__})') from None
    if not frames:
        raise MediaError('the video has no frames')
    seconds = len(frames) / native
    count = max(min_frames, min(max_frames, round(seconds * fps)))
    count = min(count, len(frames))
    return _uniform(frames, count), count / seconds


def _uniform(frames: list, count: int) -> list:
    """``count`` frames spread evenly from the first to the last."""
    if count >= len(frames):
        return frames
    step = (len(frames) - 1) / max(count - 1, 1)
    return [frames[round(i * step)] for i in range(count)]


def load_audio(source, sampling_rate: int | None = None, verify_only: bool = False):
    """``source`` (a path, bytes, a ``{'bytes', 'path'}`` record, a ``data:`` URL or base64) decoded by soundfile
    (WAV, FLAC, OGG, MP3, ...) to a mono float32 waveform resampled to ``sampling_rate`` (soxr). ``verify_only``
    reads the header only and returns None (fast, for checking a whole dataset before training)."""
    try:
        import soundfile
    except ImportError:
        raise MediaError("reading audio needs soundfile and soxr (pip install 'swift[audio]')") from None
    if isinstance(source, (list, tuple)) or hasattr(source, 'dtype'):
        raise MediaError('give audio as a file, bytes or base64, not as samples')
    data = image_bytes_or_path(source)
    file = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        if verify_only:
            soundfile.info(file)
            return None
        samples, rate = soundfile.read(file, dtype='float32', always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, TypeError) as err:
        raise MediaError(f'not a readable audio file ({str(err).splitlines()[0].rpartition(": ")[2]})') from None
    mono = samples.mean(axis=1)
    return mono if sampling_rate is None or rate == sampling_rate else _resampled(mono, rate, sampling_rate)


def _resampled(samples, rate: int, target: int):
    try:
        import soxr
    except ImportError:
        raise MediaError("resampling audio needs soxr (pip install 'swift[audio]')") from None
    return soxr.resample(samples, rate, target).astype('float32')
