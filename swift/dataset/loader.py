"""Load datasets named on the command line: local files, built-in datasets and hub ids.

A name is ``path_or_id[:subset][#N]``. ``#N`` samples N rows, repeating the data when N is larger. Every row keeps
the file and line it came from, so a bad row is reported as ``file:line: reason``.
"""
import csv
import hashlib
import json
import os
import pickle
import random
from dataclasses import dataclass, field
from typing import Callable
from importlib import resources

from ..hub import download_dataset
from ..utils import SwiftError, get_logger
from .preprocess import RowError, normalize_row, rename_columns
from .split import split_rows

logger = get_logger()
DATA_SUFFIXES = ('.jsonl', '.json', '.csv', '.parquet')


@dataclass
class DatasetSpec:
    name: str
    subset: str | None = None
    sample: int | None = None


@dataclass
class LoadedRows:
    rows: list[dict] = field(default_factory=list)
    skipped: int = 0


def parse_spec(spec: str) -> DatasetSpec:
    """``name[:subset][#N]``; an existing file path is taken whole, whatever it contains."""
    if os.path.exists(spec):
        return DatasetSpec(spec)
    name, sample = spec, None
    if '#' in name:
        name, _, count = name.rpartition('#')
        if not count.isdigit():
            raise SwiftError(f"--dataset {spec!r}: the part after '#' must be a row count")
        sample = int(count)
    subset = None
    if ':' in name and not os.path.exists(name):
        name, _, subset = name.partition(':')
    return DatasetSpec(name, subset or None, sample)


def _builtin_info() -> dict:
    return json.loads(resources.files('swift.dataset').joinpath('data/dataset_info.json').read_text('utf-8'))


def read_file(path: str) -> list[tuple[str, object]]:
    """``(where, raw_row)`` pairs; ``where`` is ``path:line`` (CSV lines count the header).

    A JSONL line that is not valid JSON gives a ``RowError`` as its row, for ``load_rows`` to raise or skip."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == '.jsonl':
        return _read_jsonl(path)
    if suffix == '.json':
        return _read_json(path)
    if suffix == '.csv':
        # utf-8-sig: files saved by Excel and Windows tools start with a byte-order mark.
        with open(path, encoding='utf-8-sig', newline='') as f:
            # csv keeps every value a string: '00000' and '3.3' stay as written.
            return [(f'{path}:{i + 2}', dict(row)) for i, row in enumerate(csv.DictReader(f))]
    if suffix == '.parquet':
        import pyarrow.parquet as pq
        return [(f'{path}:row {i + 1}', row) for i, row in enumerate(pq.read_table(path).to_pylist())]
    raise SwiftError(f'{path}: unsupported file type {suffix!r}; use one of {", ".join(DATA_SUFFIXES)}')


def _read_jsonl(path: str) -> list[tuple[str, object]]:
    rows = []
    with open(path, encoding='utf-8-sig') as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    # One bad line is a malformed row: load_rows stops on it, or skips it with strict=False.
                    row = RowError(f'invalid JSON: {err.msg} (column {err.colno})')
                rows.append((f'{path}:{lineno}', row))
    return rows


def _read_json(path: str) -> list[tuple[str, object]]:
    with open(path, encoding='utf-8-sig') as f:
        data = _json_or_error(f.read(), path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise SwiftError(f'{path}: expected a JSON array of rows')
    return [(f'{path}:row {i + 1}', row) for i, row in enumerate(data)]


def _json_or_error(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SwiftError(f'{where}: invalid JSON: {err.msg} (column {err.colno})') from None


def _hub_files(spec: DatasetSpec, info: dict, use_hf: bool) -> list[str]:
    repo = info.get('hf_dataset_id', spec.name) if use_hf else info.get('ms_dataset_id', spec.name)
    folder = download_dataset(repo, use_hf=use_hf)
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
                   if name.endswith(DATA_SUFFIXES) and 'test' not in name and (not spec.subset or spec.subset in root
                                                                                 or spec.subset in name))
    if not files:
        raise SwiftError(f'dataset {repo!r}: no data files found in the download')
    return files


def _source_rows(spec: DatasetSpec, use_hf: bool) -> tuple[list[tuple[str, object]], dict]:
    if os.path.isfile(spec.name):
        return read_file(spec.name), {}
    if os.path.isdir(spec.name):
        files = sorted(os.path.join(spec.name, n) for n in os.listdir(spec.name) if n.endswith(DATA_SUFFIXES))
        return [r for path in files for r in read_file(path)], {}
    info = _builtin_info().get(spec.name)
    if info is not None and 'file' in info:
        path = str(resources.files('swift.dataset').joinpath('data', info['file']))
        return [(f"{spec.name}:{where.rsplit(':', 1)[1]}", row) for where, row in read_file(path)], info
    if spec.name.endswith(DATA_SUFFIXES):
        raise SwiftError(f'--dataset {spec.name}: file not found')
    return [r for path in _hub_files(spec, info or {}, use_hf) for r in read_file(path)], info or {}


def source_files(spec: DatasetSpec, use_hf: bool) -> tuple[list[tuple[str, str]], dict]:
    """``(path, label)`` of every data file of ``spec`` and its dataset_info entry, for reading lazily
    (--streaming). ``label`` names rows in messages: the path, or the built-in dataset's name."""
    if os.path.isfile(spec.name):
        return [(spec.name, spec.name)], {}
    if os.path.isdir(spec.name):
        files = sorted(os.path.join(spec.name, n) for n in os.listdir(spec.name) if n.endswith(DATA_SUFFIXES))
        if not files:
            raise SwiftError(f'--dataset {spec.name}: no {", ".join(DATA_SUFFIXES)} file in this folder')
        return [(path, path) for path in files], {}
    info = _builtin_info().get(spec.name)
    if info is not None and 'file' in info:
        return [(str(resources.files('swift.dataset').joinpath('data', info['file'])), spec.name)], info
    if spec.name.endswith(DATA_SUFFIXES):
        raise SwiftError(f'--dataset {spec.name}: file not found')
    return [(path, path) for path in _hub_files(spec, info or {}, use_hf)], info or {}


def _sample(rows: list, n: int | None, rng: random.Random) -> list:
    if n is None:
        return rows
    if not rows:
        return rows
    repeats, remainder = divmod(n, len(rows))
    return rows * repeats + rng.sample(rows, remainder)


def _fill_identity(row: dict, names: list[str], authors: list[str], where: str) -> dict:
    if not names or not authors:
        raise SwiftError('swift/self-cognition needs --model_name and --model_author (one each, or Chinese then '
                         'English)')
    i = 0 if row.get('tag') == 'zh' else -1
    fill = {'{{NAME}}': names[i], '{{AUTHOR}}': authors[i]}
    for key in ('query', 'response'):
        for placeholder, value in fill.items():
            row[key] = row[key].replace(placeholder, value)
    return {k: v for k, v in row.items() if k != 'tag'}


def _folder_of(where: str) -> str | None:
    """The folder of the file a row comes from (``path:line``), where its relative media paths start."""
    path = where.rsplit(':', 1)[0]
    return os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else None


def load_rows(specs: list[str], *, columns: dict | None = None, strict: bool = True, seed: int = 42,
              use_hf: bool = False, model_name: list[str] | None = None,
              model_author: list[str] | None = None, check: Callable[[dict], None] | None = None,
              auto_columns: bool = True, interleave_prob: list[float] | None = None,
              stopping_strategy: str = 'first_exhausted', cache: bool = False) -> LoadedRows:
    """Normalised rows of every spec, concatenated. Bad rows stop the run, or with ``strict=False`` are counted.

    ``check`` is what a task needs of a normalised row beyond its format (e.g. a rejected answer for DPO); it
    raises RowError, so its failures name the file and line too. ``interleave_prob`` mixes the specs' rows as
    🤗 ``datasets.interleave_datasets`` does (one probability per spec, ``stopping_strategy`` first_exhausted or
    all_exhausted) instead of concatenating them. ``cache`` (``--load_from_cache_file``) reuses each spec's
    normalised rows from ``<HF datasets cache>/swift_rows/``, keyed by the sampled raw rows' content and the
    settings that shape them; a miss normalises and stores them.
    """
    if interleave_prob is not None and len(interleave_prob) != len(specs):
        raise SwiftError(f'--interleave_prob gives {len(interleave_prob)} probabilities for {len(specs)} datasets')
    rng = random.Random(seed)
    loaded = LoadedRows()
    per_spec = []
    for text in specs:
        spec = parse_spec(text)
        source, info = _source_rows(spec, use_hf)
        mapping = {**info.get('columns', {}), **(columns or {})}
        sampled = _sample(source, spec.sample, rng)
        settings = (mapping, info.get('defaults', {}), bool(info.get('fill_identity')), model_name, model_author,
                    auto_columns)
        normalised = _cached(sampled, settings) if cache else None
        if normalised is None:
            normalised = [(where, normalise_raw(raw, where, info, mapping, model_name, model_author, auto_columns))
                          for where, raw in sampled]
            if cache:
                _store(sampled, settings, normalised)
        rows = []
        for where, row in normalised:
            try:
                if isinstance(row, RowError):
                    raise row
                if check is not None:
                    check(row)
                rows.append(row)
            except RowError as err:
                if strict:
                    raise SwiftError(f'{where}: {err} (pass --strict false to skip such rows)') from None
                loaded.skipped += 1
        per_spec.append(rows)
    loaded.rows = (_interleave(per_spec, interleave_prob, seed, stopping_strategy) if interleave_prob is not None
                   else [row for rows in per_spec for row in rows])
    if loaded.skipped:
        logger.warning(f'skipped {loaded.skipped} malformed rows (--strict false)')
    return loaded


def normalise_raw(raw, where: str, info: dict, mapping: dict, model_name, model_author, auto_columns: bool):
    """The normalised row, or the RowError that says why it cannot be one."""
    try:
        if isinstance(raw, RowError):
            return raw
        if info.get('fill_identity'):
            raw = _fill_identity(dict(raw), model_name or [], model_author or [], where)
        if isinstance(raw, dict):
            raw = {**info.get('defaults', {}), **rename_columns(raw, mapping)}
        return normalize_row(raw, base_dir=_folder_of(where), auto_columns=auto_columns)
    except RowError as err:
        return err


_CACHE_VERSION = 1


def _cache_path(sampled: list, settings: tuple) -> str:
    from datasets import config
    digest = hashlib.sha256(pickle.dumps((_CACHE_VERSION, sampled, settings))).hexdigest()
    return os.path.join(str(config.HF_DATASETS_CACHE), 'swift_rows', f'{digest}.pkl')


def _cached(sampled: list, settings: tuple) -> list | None:
    path = _cache_path(sampled, settings)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, 'rb') as f:
            rows = pickle.load(f)
    except Exception as err:  # a truncated or foreign file: normalise again
        logger.warning(f'ignoring unreadable dataset cache {path}: {err}')
        return None
    logger.info(f'--load_from_cache_file: {len(rows)} rows from {path}')
    return rows


def _store(sampled: list, settings: tuple, normalised: list) -> None:
    path = _cache_path(sampled, settings)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump(normalised, f)
    os.replace(tmp, path)


def _interleave(per_spec: list[list[dict]], probabilities: list[float], seed: int, stopping_strategy: str):
    """The rows in 🤗 ``interleave_datasets`` order (the same probabilities, seed and stopping strategy)."""
    from datasets import Dataset, interleave_datasets
    if any(p < 0 for p in probabilities) or abs(sum(probabilities) - 1) > 1e-6:
        raise SwiftError(f'--interleave_prob must be non-negative and add up to 1, got {probabilities}')
    if any(not rows for rows in per_spec):
        return [row for rows in per_spec for row in rows]
    index = [Dataset.from_dict({'spec': [k] * len(rows), 'row': list(range(len(rows)))})
             for k, rows in enumerate(per_spec)]
    mixed = interleave_datasets(index, probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy)
    return [per_spec[k][i] for k, i in zip(mixed['spec'], mixed['row'])]


def load_dataset(datasets: list[str] | str, split_dataset_ratio: float = 0.0, seed: int = 42, *,
                 columns: dict | None = None, strict: bool = True, use_hf: bool = False):
    """ms-swift's ``load_dataset``: ``(train, val)`` as 🤗 datasets of normalised rows (``{'messages': ...}``, so
    ``InferRequest(**row)`` works); ``val`` is None without a split."""
    from datasets import Dataset
    specs = [datasets] if isinstance(datasets, str) else datasets
    rows = load_rows(specs, columns=columns, strict=strict, seed=seed, use_hf=use_hf).rows
    train, val = split_rows(rows, split_dataset_ratio, seed, shuffle=split_dataset_ratio > 0)
    return Dataset.from_list(train), Dataset.from_list(val) if val else None
