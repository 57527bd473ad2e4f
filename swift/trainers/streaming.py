"""--streaming while training: rows encoded (and packed) as they are read, and the stream's position in every
checkpoint, so ``--resume_from_checkpoint`` goes on with the very next rows.

The position is ``(epoch, rows, packs)``: raw rows of the epoch read before the next item (with ``--packing``, before
the pack buffer the next pack comes from, and how many packs of that buffer were already given). The training
process reads the stream itself, without DataLoader workers or accelerate's prefetching, so the position of the last
item yielded is the position of the last item trained on when a checkpoint is written.
"""
import json
import os
from dataclasses import asdict, dataclass

from torch.utils.data import DataLoader, IterableDataset

from ..dataset.packing import pack_rows
from ..dataset.streaming import RowStream
from ..template import Template
from ..utils import SwiftError, get_logger
from .data import EncodeStats, _trainable
from .trainer import SwiftTrainer

logger = get_logger()
PACK_BUFFER_ROWS = 256  # encoded rows packed together (first-fit decreasing) before their packs are given out
POSITION_FILE = 'stream_position-rank{rank}.json'


@dataclass
class StreamPosition:
    epoch: int = 0
    rows: int = 0
    packs: int = 0


def save_position(checkpoint_dir: str, rank: int, position: StreamPosition) -> None:
    os.makedirs(checkpoint_dir, exist_ok=True)
    with open(os.path.join(checkpoint_dir, POSITION_FILE.format(rank=rank)), 'w') as f:
        json.dump(asdict(position), f)


def load_position(checkpoint_dir: str, rank: int) -> StreamPosition:
    path = os.path.join(checkpoint_dir, POSITION_FILE.format(rank=rank))
    if not os.path.isfile(path):
        raise SwiftError(f'--resume_from_checkpoint {checkpoint_dir}: no {os.path.basename(path)}, so the stream '
                         'cannot continue where it stopped (a checkpoint of a run without --streaming, or with fewer '
                         'processes); pass --ignore_data_skip true --resume_only_model true to restart the stream')
    with open(path) as f:
        return StreamPosition(**json.load(f))


class EncodedStream(IterableDataset):
    """Encoded (optionally packed) rows of a :class:`RowStream`, epoch after epoch without end: training stops at
    --max_steps. Rows too long for --max_length or with no token to learn are dropped and counted."""

    def __init__(self, rows: RowStream, template: Template, pack_length: int | None = None,
                 start: StreamPosition | None = None):
        self.rows = rows
        self.template = template
        self.pack_length = pack_length
        self.start = start or StreamPosition()
        self.position = self.start
        self.stats = EncodeStats()

    def __iter__(self):
        epoch_start = self.position = self.start
        while True:
            given = 0
            for item in (self._packed if self.pack_length else self._single)(epoch_start):
                given += 1
                yield item
            if not given and epoch_start.rows == 0 and epoch_start.packs == 0:
                raise SwiftError('--streaming: no row of the dataset is left to train on: all are malformed, longer '
                                 'than --max_length or carry no loss')
            epoch_start = StreamPosition(epoch_start.epoch + 1)

    def _encoded(self, row: dict | None) -> dict | None:
        if row is None:  # malformed, counted by the RowStream
            return None
        encoded = self.template.encode(row)
        if _trainable(encoded):
            self.stats.kept += 1
            return encoded
        if encoded is None:
            self.stats.too_long += 1
        else:
            self.stats.no_loss += 1
        return None

    def _single(self, start: StreamPosition):
        read = start.rows
        for row in self.rows.rows(start.epoch, start.rows):
            read += 1
            encoded = self._encoded(row)
            if encoded is not None:
                self.position = StreamPosition(start.epoch, read)  # before yielding: a checkpoint may follow
                yield encoded

    def _packed(self, start: StreamPosition):
        buffer_start, skip, read, buffer = start.rows, start.packs, start.rows, []
        for row in self.rows.rows(start.epoch, start.rows):
            read += 1
            encoded = self._encoded(row)
            if encoded is not None:
                buffer.append(encoded)
            if len(buffer) == PACK_BUFFER_ROWS:
                yield from self._packs(buffer, start.epoch, buffer_start, read, skip)
                buffer_start, skip, buffer = read, 0, []
        if buffer:
            yield from self._packs(buffer, start.epoch, buffer_start, read, skip)

    def _packs(self, buffer: list[dict], epoch: int, buffer_start: int, buffer_end: int, skip: int):
        packs = pack_rows(buffer, self.pack_length)
        for j in range(skip, len(packs)):
            last = j == len(packs) - 1
            self.position = (StreamPosition(epoch, buffer_end) if last else StreamPosition(epoch, buffer_start, j + 1))
            yield packs[j]

    def report(self) -> None:
        self.stats.report('train stream')
        if self.rows.malformed:
            logger.warning(f'train stream: skipped {self.rows.malformed} malformed rows (--strict false)')


class StreamingTrainer(SwiftTrainer):
    """A SwiftTrainer whose training data is an :class:`EncodedStream` already cut per rank."""

    def get_train_dataloader(self) -> DataLoader:
        # Not through accelerate: it would cut the rank's share again, and its prefetching would move the stream
        # past what was trained on.
        collate = self._get_collator_with_removed_columns(self.data_collator, description='training')
        return DataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=collate)

    def get_resumed_dataloader(self, dataloader: DataLoader, num_batches: int) -> DataLoader:
        return dataloader  # the stream already starts where the checkpoint stopped: nothing to replay

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)  # every rank writes its own, into the checkpoint being staged
        save_position(output_dir, self.args.process_index, self.train_dataset.position)

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        self.train_dataset.report()
        return result
