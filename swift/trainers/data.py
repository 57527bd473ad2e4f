"""Encode normalised rows with a template, eagerly (optionally in parallel) or lazily while training."""
from dataclasses import dataclass
from multiprocessing import get_context

from torch.utils.data import Dataset

from ..template import Template
from ..template.base import IGNORE_INDEX
from ..utils import get_logger

logger = get_logger()


@dataclass
class EncodeStats:
    kept: int = 0
    too_long: int = 0  # dropped by --truncation_strategy delete
    no_loss: int = 0  # nothing left to learn after truncation

    def report(self, split: str) -> None:
        dropped = self.too_long + self.no_loss
        message = f'{split}: {self.kept} rows encoded'
        if dropped:
            message += (f'; dropped {self.too_long} longer than --max_length (--truncation_strategy delete) and '
                        f'{self.no_loss} with no token left to train on')
        (logger.warning if dropped else logger.info)(message)


_worker_template: Template | None = None


def _init_worker(template: Template) -> None:
    global _worker_template
    _worker_template = template


def _encode_in_worker(row: dict) -> dict | None:
    return _worker_template.encode(row)


def _trainable(encoded: dict | None) -> bool:
    return encoded is not None and any(label != IGNORE_INDEX for label in encoded['labels'])


def encode_rows(template: Template, rows: list[dict], num_proc: int = 1) -> tuple[list[dict], EncodeStats]:
    """Encode every row; rows too long or without loss tokens are dropped and counted."""
    if num_proc > 1 and len(rows) > num_proc:
        with get_context('fork').Pool(num_proc, initializer=_init_worker, initargs=(template,)) as pool:
            encoded = pool.map(_encode_in_worker, rows, chunksize=max(1, len(rows) // (num_proc * 4)))
    else:
        encoded = [template.encode(row) for row in rows]
    stats = EncodeStats(too_long=sum(e is None for e in encoded))
    kept = [e for e in encoded if _trainable(e)]
    stats.kept = len(kept)
    stats.no_loss = len(encoded) - stats.too_long - stats.kept
    return kept, stats


class LazyEncodedDataset(Dataset):
    """Encodes on access (--lazy_tokenize). A row that cannot be trained on is replaced by the next one."""

    def __init__(self, template: Template, rows: list[dict]):
        self.template = template
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        for offset in range(len(self.rows)):
            encoded = self.template.encode(self.rows[(index + offset) % len(self.rows)])
            if _trainable(encoded):
                return encoded
        raise ValueError('no row of the dataset fits --max_length')
