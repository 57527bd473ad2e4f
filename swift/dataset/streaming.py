"""--streaming: training rows read lazily, as a 🤗 ``datasets.IterableDataset``, never all in memory.

    swift pt --model Qwen/Qwen2.5-7B --dataset corpus/ --streaming true --max_steps 10000 --packing true

jsonl, csv and parquet files (and folders of them, built-in and hub datasets) are read row by row; a ``.json`` array
cannot be read piecewise and is read whole. The rows are mixed (``--interleave_prob``) or concatenated, shuffled in a
buffer of ``--shuffle_buffer_size`` rows (reseeded every epoch, as datasets' ``set_epoch`` does) and cut per rank with
datasets' ``split_dataset_by_node``. Each row keeps the file and line it came from, so a bad row is reported as
``file:line: reason`` (or skipped and counted with ``--strict false``).

:class:`RowStream` gives one epoch's normalised rows from any row offset: the offset is what a checkpoint records
to resume mid-stream (trainers/streaming.py encodes and packs the rows and keeps that position).
"""
import csv
import json
import os
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

from ..utils import SwiftError, get_logger
from .loader import DATA_SUFFIXES, parse_spec, normalise_raw, source_files
from .preprocess import RowError

logger = get_logger()
PARQUET_BATCH_ROWS = 1024  # rows decoded at a time from a parquet file


def _file_rows(path: str, label: str) -> Iterator[dict]:
    """``{'where', 'text'}`` per row: ``text`` is the row as JSON, parsed later so a bad line names its place."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == '.jsonl':
        with open(path, encoding='utf-8-sig') as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield {'where': f'{label}:{lineno}', 'text': line}
    elif suffix == '.csv':
        with open(path, encoding='utf-8-sig', newline='') as f:
            for i, row in enumerate(csv.DictReader(f)):
                yield {'where': f'{label}:{i + 2}', 'text': json.dumps(dict(row), ensure_ascii=False)}
    elif suffix == '.parquet':
        import pyarrow.parquet as pq
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield {'where': f'{label}:row {number}', 'text': json.dumps(row, ensure_ascii=False, default=str)}
    elif suffix == '.json':  # an array has no row boundaries to read between
        from .loader import read_file
        for where, row in read_file(path):
            yield {'where': where.replace(path, label, 1), 'text': json.dumps(row, ensure_ascii=False)}
    else:
        raise SwiftError(f'{path}: unsupported file type {suffix!r}; use one of {", ".join(DATA_SUFFIXES)}')


def _generate(paths: list[str], labels: list[str], spec: int) -> Iterator[dict]:
    # datasets shards the lists of gen_kwargs: one shard per file, for split_dataset_by_node and set_epoch.
    for path, label in zip(paths, labels):
        for row in _file_rows(path, label):
            yield {**row, 'spec': spec}


def open_stream(specs: list[str], *, use_hf: bool = False, seed: int = 42, shuffle: bool = True,
                shuffle_buffer_size: int = 1000, interleave_prob: list[float] | None = None,
                stopping_strategy: str = 'first_exhausted', rank: int = 0, world_size: int = 1):
    """The raw rows of ``specs`` as one ``datasets.IterableDataset`` (this rank's share), and each spec's
    dataset_info entry (column mapping, defaults) for normalising them. ``name#N`` takes the first N rows."""
    from datasets import Features, IterableDataset, Value, concatenate_datasets, interleave_datasets
    from datasets.distributed import split_dataset_by_node
    if interleave_prob is not None and len(interleave_prob) != len(specs):
        raise SwiftError(f'--interleave_prob gives {len(interleave_prob)} probabilities for {len(specs)} datasets')
    if interleave_prob is not None and (any(p < 0 for p in interleave_prob) or abs(sum(interleave_prob) - 1) > 1e-6):
        raise SwiftError(f'--interleave_prob must be non-negative and add up to 1, got {interleave_prob}')
    features = Features({'where': Value('string'), 'text': Value('string'), 'spec': Value('int32')})
    parts, infos = [], []
    for k, text in enumerate(specs):
        spec = parse_spec(text)
        files, info = source_files(spec, use_hf)
        part = IterableDataset.from_generator(_generate, features=features, gen_kwargs={
            'paths': [path for path, _ in files], 'labels': [label for _, label in files], 'spec': k})
        parts.append(part.take(spec.sample) if spec.sample is not None else part)
        infos.append(info)
    if interleave_prob is not None and len(parts) > 1:
        stream = interleave_datasets(parts, probabilities=interleave_prob, seed=seed,
                                     stopping_strategy=stopping_strategy)
    else:
        stream = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if shuffle:
        stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    if world_size > 1:
        stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
    return stream, infos


@dataclass
class RowStream:
    """Normalised rows of a stream, one epoch at a time, from a row offset of that epoch.

    Every raw row counts towards the offset, a malformed one too (it is yielded as None), so an offset names the
    same place in the stream on every reading."""
    stream: object  # datasets.IterableDataset of {'where', 'text', 'spec'}
    infos: list[dict]
    columns: dict | None = None
    strict: bool = True
    model_name: list[str] | None = None
    model_author: list[str] | None = None
    auto_columns: bool = True
    malformed: int = 0  # rows skipped with --strict false

    def rows(self, epoch: int, offset: int = 0) -> Iterator[dict | None]:
        self.stream.set_epoch(epoch)  # the shuffle buffer and the file order are reseeded per epoch
        for raw in islice(self.stream, offset, None):
            yield self._normalised(raw)

    def _normalised(self, raw: dict) -> dict | None:
        where, info = raw['where'], self.infos[raw['spec']]
        try:
            row = json.loads(raw['text'])
        except json.JSONDecodeError as err:
            row = RowError(f'invalid JSON: {err.msg} (column {err.colno})')
        mapping = {**info.get('columns', {}), **(self.columns or {})}
        row = normalise_raw(row, where, info, mapping, self.model_name, self.model_author, self.auto_columns)
        if isinstance(row, RowError):
            if self.strict:
                raise SwiftError(f'{where}: {row} (pass --strict false to skip such rows)')
            self.malformed += 1
            return None
        return row
