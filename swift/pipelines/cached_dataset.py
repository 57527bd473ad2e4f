"""Encode once: ``swift export --to_cached_dataset true`` writes encoded rows, ``swift sft --cached_dataset`` trains
on them without encoding again.

    swift export --model Qwen/Qwen2.5-7B --dataset corpus.jsonl --to_cached_dataset true --output_dir cached
    swift sft --model Qwen/Qwen2.5-7B --cached_dataset cached/train --cached_val_dataset cached/val ...

The layout is ms-swift's: ``<output_dir>/train`` and ``<output_dir>/val``, each a 🤗 datasets ``save_to_disk``
folder. Rows hold ``input_ids``, ``labels`` and ``lengths`` (ms-swift's length column, read for packing). Each folder
also holds ``swift_cached_dataset.json``, the settings the rows were encoded with (template, tokenizer,
--max_length, ...): training refuses a folder encoded otherwise, in one line naming the flag, since its ids would
silently differ from what the run's flags ask for. Packing happens while training (``--packing true``), as in
ms-swift, so one export serves any --packing_length. ``--template_mode rlhf|kto`` stores the alignment columns
``swift rlhf`` trains on (``prompt_ids``, ``chosen_ids``, ``rejected_ids``; or ``completion_ids`` and ``label``)
instead. ``FOLDER#N`` samples N rows, as ``--dataset`` does.

``--load_from_cache_file true`` gives the same saving without an export: the encoded rows of each split are kept
under the 🤗 datasets cache (``swift_encoded/``), keyed by the rows and their encoding, and the next run with the
same data and flags reads them instead of encoding (ms-swift's datasets ``map`` cache does this for it).
"""
import hashlib
import json
import os
import pickle
import random
import shutil

from ..arguments import ExportArguments, TrainArguments
from ..dataset import ROW_CHECKS
from ..rlhf.data import encode_alignment_rows
from ..template import Template
from ..template.vision import VisionTemplate
from ..trainers import encode_rows
from ..trainers.data import EncodeStats
from ..utils import SwiftError, get_logger
from ..utils.io import read_json, write_json
from .common import load_folder_and_template

logger = get_logger()
INFO_FILE = 'swift_cached_dataset.json'
# The flags that change the ids or labels of an encoded row; a cached folder records the values it was written with.
# --template_mode of an export: the row check (dataset/preference.py) and the encoding (rlhf/data.py ENCODERS) of its
# rows; 'train' is swift pt/sft's. rlhf = dpo, orpo, cpo, simpo (ms-swift's mode for them); kto = kto.
TEMPLATE_MODES = {'train': (None, 'train'), 'rlhf': ('pair', 'pair'), 'kto': ('kto', 'completion')}
ENCODING_FLAGS = ('max_length', 'truncation_strategy', 'loss_scale', 'use_chat_template', 'response_prefix',
                  'enable_thinking', 'preserve_thinking', 'add_non_thinking_prefix')


def export_cached_dataset(args: ExportArguments) -> str:
    """Encode --dataset (and --val_dataset, or a --split_dataset_ratio share) and save both splits under
    --output_dir (default ``<model>-cached_dataset``). Needs the tokenizer only, never the weights."""
    from .train import load_train_val_rows  # train imports this module for --cached_dataset
    out_dir = args.output_dir or f"{args.model.rstrip('/')}-cached_dataset"
    if os.path.exists(out_dir):
        if not args.exist_ok:
            raise SwiftError(f'--output_dir {out_dir} already exists: pass another --output_dir, or --exist_ok true '
                             'to replace it')
        shutil.rmtree(out_dir)
    if not args.dataset:
        raise SwiftError('--to_cached_dataset true needs --dataset: the rows to encode')
    _, template = load_folder_and_template(args)
    if isinstance(template, VisionTemplate):
        raise SwiftError(f'--to_cached_dataset: the {template.template_type} template encodes images and videos, '
                         'which cached datasets do not hold yet; train on --dataset')
    check, encoding = TEMPLATE_MODES[args.template_mode]
    info = encoding_info(args, template, encoding)
    train_rows, val_rows = load_train_val_rows(args, ROW_CHECKS[check] if check else None)
    for split, rows in (('train', train_rows), ('val', val_rows)):
        if rows:
            folder = os.path.join(out_dir, split)
            if encoding == 'train':
                _save_split(template, rows, args.dataset_num_proc, folder, info)
            else:
                dataset = encode_alignment_rows(template, rows, encoding, split)
                _save(dataset.add_column('lengths', [_lengths(row) for row in dataset]), folder, info)
    logger.info(f'cached_dataset: {os.path.join(out_dir, "train")}')
    return out_dir


def _lengths(row: dict) -> list[int]:
    """ms-swift's lengths column: each sequence the row trains on (a prompt with each answer)."""
    prompt = len(row['prompt_ids'])
    return [prompt + len(row[key]) for key in ('chosen_ids', 'rejected_ids', 'completion_ids') if key in row]


def _save(dataset, folder: str, info: dict) -> None:
    dataset.save_to_disk(folder)
    write_json(os.path.join(folder, INFO_FILE), {**info, 'rows': len(dataset)})
    logger.info(f'{os.path.basename(folder)}: {len(dataset)} encoded rows saved to {folder}')


def _save_split(template: Template, rows: list[dict], num_proc: int, folder: str, info: dict) -> None:
    from datasets import Dataset
    encoded, stats = encode_rows(template, rows, num_proc)
    split = os.path.basename(folder)
    stats.report(split)
    if not encoded:
        raise SwiftError(f'--to_cached_dataset: no {split} row is left: all are longer than --max_length or carry '
                         'no loss')
    _save(Dataset.from_list([{**row, 'lengths': [len(row['input_ids'])]} for row in encoded]), folder, info)


def encoding_info(args, template: Template, encoding: str = 'train') -> dict:
    """What decides a row's encoding: which rows (sft's, or an alignment encoding), the template, its system
    prompt, the tokenizer's vocabulary and the encoding flags."""
    vocab = json.dumps(sorted(template.tokenizer.get_vocab().items()), ensure_ascii=False)
    return {'encoding': encoding, 'template': template.template_type, 'system': template.default_system,
            'tokenizer': hashlib.sha256(vocab.encode()).hexdigest()[:16], 'model': args.model,
            **{flag: getattr(args, flag) for flag in ENCODING_FLAGS}}


def load_cached_datasets(args: TrainArguments, template: Template) -> tuple[list[dict], list[dict]]:
    """The encoded (train, val) rows of --cached_dataset / --cached_val_dataset, checked against this run's
    encoding, plus any --dataset / --val_dataset rows encoded now (ms-swift concatenates both); packed with
    --packing true."""
    from .train import load_train_val_rows, pack_split
    info = encoding_info(args, template)
    train = [row for spec in args.cached_dataset for row in _read(spec, info, '--cached_dataset', args.data_seed)]
    val = [row for spec in args.cached_val_dataset for row in _read(spec, info, '--cached_val_dataset', args.data_seed)]
    if args.dataset:
        train_rows, val_rows = load_train_val_rows(args)
        train += _encode(template, train_rows, args, 'train')
        val += _encode(template, val_rows, args, 'val')
    logger.info(f'cached datasets: {len(train)} train and {len(val)} val rows')
    return pack_split(train, args, 'train'), pack_split(val, args, 'val')


def _read(spec: str, info: dict, flag: str, seed: int) -> list[dict]:
    dataset = _open(spec, info, flag, seed)
    if 'input_ids' not in dataset.column_names:
        raise SwiftError(f'{flag} {spec}: its rows hold no input_ids (ms-swift 4 writes rows it encodes while '
                         'training); export it again with this swift export --to_cached_dataset true')
    return [{key: value for key, value in row.items() if key != 'lengths'} for row in dataset]


def _open(spec: str, info: dict, flag: str, seed: int):
    """The datasets.Dataset of one ``FOLDER`` or ``FOLDER#N`` (N rows sampled as --dataset's ``#N``: without
    replacement below the folder's size, the whole folder repeated plus a sample above it)."""
    from datasets import load_from_disk
    path, count = spec, None
    if not os.path.exists(spec) and '#' in spec:
        path, _, count = spec.rpartition('#')
        if not count.isdigit():
            raise SwiftError(f'{flag} {spec}: #N must be a number of rows')
    _ensure_folder(path, flag)
    _check_encoding(path, info, flag)
    dataset = load_from_disk(path)
    if count is None:
        return dataset
    total, wanted = len(dataset), int(count)
    rng = random.Random(seed)
    indices = list(range(total)) * (wanted // total) + rng.sample(range(total), wanted % total)
    return dataset.select(indices)


def _ensure_folder(path: str, flag: str) -> None:
    if not os.path.isfile(os.path.join(path, 'dataset_info.json')):
        raise SwiftError(f'{flag} {path}: not a cached dataset folder (write one with swift export '
                         '--to_cached_dataset true; its train/ and val/ folders are what this flag takes)')


def _check_encoding(path: str, info: dict, flag: str) -> None:
    saved_path = os.path.join(path, INFO_FILE)
    if not os.path.isfile(saved_path):
        logger.warning(f'{flag} {path}: no {INFO_FILE}, so its template, tokenizer and --max_length are not checked')
        return
    saved = read_json(saved_path)
    for key, value in info.items():
        if key == 'model' or saved.get(key) == value:
            continue
        if key == 'encoding':
            modes = {encoding: mode for mode, (_, encoding) in TEMPLATE_MODES.items()}
            raise SwiftError(f'{flag} {path}: holds rows of swift export --template_mode '
                             f'{modes.get(saved.get(key), saved.get(key))}, this run reads rows of --template_mode '
                             f'{modes.get(value, value)}')
        if key == 'tokenizer':
            raise SwiftError(f'{flag} {path}: encoded with another tokenizer (--model {saved.get("model")}), not '
                             f"--model {info['model']}'s: export it again with this model")
        what = 'system prompt' if key == 'system' else f'--{key}'
        raise SwiftError(f'{flag} {path}: encoded with {what} {saved.get(key)!r}, this run has {value!r}: '
                         'pass the same, or export it again with this run\'s flags')


def _encode(template: Template, rows: list[dict], args: TrainArguments, split: str) -> list[dict]:
    if not rows:
        return []
    encoded, stats = encode_rows(template, rows, args.dataset_num_proc)
    stats.report(split)
    return encoded


_ENCODED_CACHE_VERSION = 1


def encode_rows_cached(template: Template, rows: list[dict], args) -> tuple[list[dict], EncodeStats]:
    """``encode_rows`` for --load_from_cache_file true: the encoded rows and drop counts stored by an earlier run
    with the same rows and encoding (template, tokenizer, ENCODING_FLAGS), else encoded now and stored."""
    from datasets import config
    key = pickle.dumps((_ENCODED_CACHE_VERSION, rows, encoding_info(args, template) | {'model': None}))
    path = os.path.join(str(config.HF_DATASETS_CACHE), 'swift_encoded', f'{hashlib.sha256(key).hexdigest()}.pkl')
    if os.path.isfile(path):
        try:
            with open(path, 'rb') as f:
                encoded, stats = pickle.load(f)
            logger.info(f'--load_from_cache_file: {len(encoded)} encoded rows from {path}')
            return encoded, stats
        except Exception as err:  # a truncated or foreign file: encode again
            logger.warning(f'ignoring unreadable encoded-rows cache {path}: {err}')
    encoded, stats = encode_rows(template, rows, args.dataset_num_proc)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump((encoded, stats), f)
    os.replace(tmp, path)  # whole or absent, also when two runs store at once
    return encoded, stats


def load_cached_alignment_datasets(args, template: Template, encoding: str):
    """``swift rlhf --cached_dataset``: the (train, val) datasets.Dataset of exported alignment rows, checked like
    sft's, plus any --dataset rows encoded now."""
    from datasets import concatenate_datasets
    from .train import load_train_val_rows
    info = encoding_info(args, template, encoding)
    splits = [[_open(spec, info, flag, args.data_seed).remove_columns('lengths') for spec in specs]
              for specs, flag in ((args.cached_dataset, '--cached_dataset'),
                                  (args.cached_val_dataset, '--cached_val_dataset'))]
    if args.dataset:
        check = next(check for check, enc in TEMPLATE_MODES.values() if enc == encoding)
        for parts, rows, split in zip(splits, load_train_val_rows(args, ROW_CHECKS[check]), ('train', 'val')):
            if rows:
                parts.append(encode_alignment_rows(template, rows, encoding, split))
    return tuple(concatenate_datasets(parts) if parts else None for parts in splits)
