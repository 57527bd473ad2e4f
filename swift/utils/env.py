"""The only module that reads environment variables. Each one is documented here.

- ``NPROC_PER_NODE``: processes per node; above 1, ``swift sft``, ``swift pt`` and ``swift rlhf`` relaunch under
  torchrun (unset: 1).
- ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``: multi-node torchrun settings (defaults 1, 0,
  127.0.0.1, 29500); with ``NNODES`` above 1 each node's command launches torchrun, even for one process per node.
- ``LOCAL_RANK``: set by torchrun inside each worker; tells a worker from the launching command.
- ``WORLD_SIZE``: set by torchrun inside each worker: the number of processes in the run (1 without torchrun).
- ``HF_HUB_OFFLINE``: when ``1``, hub downloads are not attempted at all (nor are image URLs fetched).
- ``SWIFT_TIMEOUT``: seconds to wait for an image URL (default 20), as in ms-swift.
- ``MAX_PIXELS``, ``MIN_PIXELS``: the pixel bounds an image is resized into before it reaches a vision model (Qwen2-VL
  and Qwen2.5-VL: both multiples of 28x28); unset, the model's image processor keeps its own.
- ``VIDEO_MAX_PIXELS``, ``VIDEO_MIN_PIXELS``: the same per video frame (defaults 768x28x28 and 128x28x28, as
  qwen-vl-utils).
- ``FPS``: frames sampled per second of video (default 2); ``FPS_MAX_FRAMES``, ``FPS_MIN_FRAMES``: at most / at least
  this many frames per video (defaults 768 and 4).
- ``SAMPLING_RATE``: the rate (Hz) audio is resampled to before an audio model's feature extractor (as ms-swift;
  unset: the feature extractor's own, 16000 for Qwen2-Audio).
- Embedding training with ``--loss_type infonce`` (ms-swift's names and defaults): ``INFONCE_TEMPERATURE`` (0.1);
  ``INFONCE_USE_BATCH`` (true: the other rows of the batch are negatives too; false: only the row's own
  ``negative_messages``); ``INFONCE_HARD_NEGATIVES`` (each row keeps this many hard negatives, repeating random ones
  when it has fewer; unset: all); ``INFONCE_MASK_FAKE_NEGATIVE`` (false: negatives scoring above the positive +
  ``INFONCE_FAKE_NEG_MARGIN`` (0.1) are masked out); ``INFONCE_INCLUDE_QQ``, ``INFONCE_INCLUDE_DD`` (false: add the
  query-query and document-document similarities to the denominator).
- Reranker training: ``MAX_POSITIVE_SAMPLES`` (1) and ``MAX_NEGATIVE_SAMPLES`` (7) documents drawn from each row;
  ``LISTWISE_RERANKER_TEMPERATURE`` (1.0) and ``LISTWISE_RERANKER_MIN_GROUP_SIZE`` (2) for
  ``--loss_type listwise_reranker``; ``GENERATIVE_RERANKER_POSITIVE_TOKEN`` ("yes") and
  ``GENERATIVE_RERANKER_NEGATIVE_TOKEN`` ("no"), whose logit difference at the last token is a generative reranker's
  score.
"""
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, '') else default


def nproc_per_node() -> int | None:
    value = os.environ.get('NPROC_PER_NODE')
    return int(value) if value else None


def wants_torchrun() -> bool:
    """Several processes on this node or several nodes: the training command relaunches itself under torchrun."""
    return (nproc_per_node() or 1) > 1 or _int('NNODES', 1) > 1


def torchrun_settings() -> dict:
    """Multi-node settings for torchrun, from the variables users already know from ms-swift."""
    return {
        'nnodes': _int('NNODES', 1),
        'node_rank': _int('NODE_RANK', 0),
        'master_addr': os.environ.get('MASTER_ADDR', '127.0.0.1'),
        'master_port': _int('MASTER_PORT', 29500),
    }


def local_rank() -> int:
    return _int('LOCAL_RANK', -1)


def world_size() -> int:
    return _int('WORLD_SIZE', 1)


def is_distributed_worker() -> bool:
    return local_rank() >= 0


def set_single_process_rank(port: int) -> None:
    """The variables torchrun gives a worker, for a run of one process without it (DeepSpeed reads them)."""
    for name, value in (('RANK', 0), ('LOCAL_RANK', 0), ('WORLD_SIZE', 1), ('LOCAL_WORLD_SIZE', 1),
                        ('MASTER_ADDR', '127.0.0.1'), ('MASTER_PORT', port)):
        os.environ.setdefault(name, str(value))


def hub_offline() -> bool:
    return os.environ.get('HF_HUB_OFFLINE', '0').lower() in ('1', 'true', 'yes')


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, '') else default


def _optional_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, '') else None


def media_timeout() -> float:
    return _float('SWIFT_TIMEOUT', 20.0)


def image_pixel_bounds() -> tuple[int | None, int | None]:
    """``(MIN_PIXELS, MAX_PIXELS)``; None where unset."""
    return _optional_int('MIN_PIXELS'), _optional_int('MAX_PIXELS')


def video_pixel_bounds() -> tuple[int, int]:
    """``(VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS)`` per frame."""
    return _int('VIDEO_MIN_PIXELS', 128 * 28 * 28), _int('VIDEO_MAX_PIXELS', 768 * 28 * 28)


def video_sampling() -> tuple[float, int, int]:
    """``(FPS, FPS_MIN_FRAMES, FPS_MAX_FRAMES)``."""
    return _float('FPS', 2.0), _int('FPS_MIN_FRAMES', 4), _int('FPS_MAX_FRAMES', 768)


def audio_sampling_rate() -> int | None:
    """``SAMPLING_RATE``; None where unset."""
    return _optional_int('SAMPLING_RATE')


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ''):
        return default
    return value.strip().lower() in ('1', 'true', 'yes', 'on')


def infonce_settings() -> dict:
    """The INFONCE_* variables, by the keyword names of ``trainers.retrieval_losses.infonce_loss``."""
    return {'temperature': _float('INFONCE_TEMPERATURE', 0.1), 'use_batch': _bool('INFONCE_USE_BATCH', True),
            'hard_negatives': _optional_int('INFONCE_HARD_NEGATIVES'),
            'mask_fake_negative': _bool('INFONCE_MASK_FAKE_NEGATIVE', False),
            'fake_neg_margin': _float('INFONCE_FAKE_NEG_MARGIN', 0.1),
            'include_qq': _bool('INFONCE_INCLUDE_QQ', False), 'include_dd': _bool('INFONCE_INCLUDE_DD', False)}


def listwise_reranker_settings() -> dict:
    return {'temperature': _float('LISTWISE_RERANKER_TEMPERATURE', 1.0),
            'min_group_size': _int('LISTWISE_RERANKER_MIN_GROUP_SIZE', 2)}


def reranker_samples() -> tuple[int, int]:
    """``(MAX_POSITIVE_SAMPLES, MAX_NEGATIVE_SAMPLES)``."""
    return _int('MAX_POSITIVE_SAMPLES', 1), _int('MAX_NEGATIVE_SAMPLES', 7)


def generative_reranker_tokens() -> tuple[str, str]:
    return (os.environ.get('GENERATIVE_RERANKER_POSITIVE_TOKEN') or 'yes',
            os.environ.get('GENERATIVE_RERANKER_NEGATIVE_TOKEN') or 'no')
