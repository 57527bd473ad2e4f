"""Encode once (issue 17): swift export --to_cached_dataset writes ms-swift's layout of encoded rows, and swift sft
--cached_dataset trains on them with the losses of training on the raw rows."""
import json
import os

import pytest

from swift.arguments import parse_args
from swift.pipelines.cached_dataset import INFO_FILE
from swift.pipelines.export import export_main
from swift.pipelines.train import sft_main
from swift.rlhf.arguments import rlhf_arguments
from swift.utils import SwiftError

TRAIN_FLAGS = ['--train_type', 'lora', '--max_steps', '4', '--logging_steps', '1', '--per_device_train_batch_size',
               '2', '--learning_rate', '1e-3', '--save_steps', '100', '--dataloader_num_workers', '0', '--seed', '7',
               '--max_length', '64', '--split_dataset_ratio', '0.25', '--eval_strategy', 'no', '--report_to', 'none']


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('rows') / 'rows.jsonl'
    with open(path, 'w') as f:
        for i in range(16):
            answer = f'{i} plus {i} is {2 * i}.' + (' and more' * 40 if i == 3 else '')  # row 3: over --max_length
            f.write(json.dumps({'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                                             {'role': 'assistant', 'content': answer}]}) + '\n')
    return str(path)


@pytest.fixture(scope='module')
def cached(qwen2_dir, data, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp('export') / 'cached')
    result = export_main(['--model', qwen2_dir, '--dataset', data, '--to_cached_dataset', 'true', '--output_dir', out,
                          '--max_length', '64', '--split_dataset_ratio', '0.25'])
    assert result['cached_dataset'] == out
    return out


def _losses(result: dict) -> list[float]:
    return [record['loss'] for record in result['log_history'] if 'loss' in record]


def test_export_writes_encoded_rows_in_ms_swifts_layout(cached):
    from datasets import load_from_disk
    train, val = load_from_disk(os.path.join(cached, 'train')), load_from_disk(os.path.join(cached, 'val'))
    assert len(train) + len(val) == 15  # 16 rows, 12 + 4 after the split; the long one dropped (delete)
    row = train[0]
    assert set(train.column_names) == {'input_ids', 'labels', 'lengths'}
    assert row['lengths'] == [len(row['input_ids'])] and len(row['labels']) == len(row['input_ids'])
    assert -100 in row['labels'] and any(label != -100 for label in row['labels'])
    info = json.load(open(os.path.join(cached, 'train', INFO_FILE)))
    assert info['template'] == 'qwen2_5' or info['template'].startswith('qwen')
    assert info['max_length'] == 64 and info['rows'] == len(train)


def test_sft_on_the_cached_rows_gives_the_raw_rows_losses(qwen2_dir, data, cached, tmp_path):
    raw = sft_main(['--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path / 'raw'), *TRAIN_FLAGS])
    from_cache = sft_main(['--model', qwen2_dir, '--cached_dataset', os.path.join(cached, 'train'),
                           '--cached_val_dataset', os.path.join(cached, 'val'),
                           '--output_dir', str(tmp_path / 'cached'), *TRAIN_FLAGS])
    assert len(_losses(raw)) == 4
    assert _losses(from_cache) == _losses(raw)


def test_cached_dataset_takes_ms_swifts_sample_syntax(qwen2_dir, cached):
    from swift.arguments import TrainArguments
    from swift.pipelines.cached_dataset import load_cached_datasets
    from swift.pipelines.common import load_folder_and_template
    train = os.path.join(cached, 'train')

    def rows(spec: str) -> list[dict]:
        args = parse_args(TrainArguments, ['--model', qwen2_dir, '--cached_dataset', spec, '--max_length', '64'])
        return load_cached_datasets(args, load_folder_and_template(args)[1])[0]

    whole = rows(train)
    few, many = rows(f'{train}#5'), rows(f'{train}#{len(whole) * 2 + 3}')
    assert len(few) == 5 and all(row in whole for row in few) and len({str(r) for r in few}) == 5
    assert len(many) == len(whole) * 2 + 3 and many[:len(whole)] == whole
    with pytest.raises(SwiftError, match='#N must be a number'):
        rows(f'{train}#all')


def test_a_cache_encoded_otherwise_is_refused_in_one_line(qwen2_dir, cached, tmp_path):
    train = os.path.join(cached, 'train')
    argv = ['--model', qwen2_dir, '--cached_dataset', train, '--output_dir', str(tmp_path), *TRAIN_FLAGS]
    with pytest.raises(SwiftError, match=r'--cached_dataset .*--max_length 64, this run has 128') as err:
        sft_main([*argv, '--max_length', '128'])
    assert '\n' not in str(err.value)
    info_path = os.path.join(train, INFO_FILE)
    info = json.load(open(info_path))
    try:  # as if another model's tokenizer had encoded it
        json.dump({**info, 'tokenizer': '0' * 16, 'model': 'other/model'}, open(info_path, 'w'))
        with pytest.raises(SwiftError, match='encoded with another tokenizer .--model other/model'):
            sft_main(argv)
    finally:
        json.dump(info, open(info_path, 'w'))
    with pytest.raises(SwiftError, match='not a cached dataset folder'):
        sft_main(['--model', qwen2_dir, '--cached_dataset', cached, '--output_dir', str(tmp_path), *TRAIN_FLAGS])
    assert not os.listdir(tmp_path)  # refused before any run folder


def test_export_and_rlhf_refusals(qwen2_dir, data, cached):
    with pytest.raises(SwiftError, match='already exists'):
        export_main(['--model', qwen2_dir, '--dataset', data, '--to_cached_dataset', 'true', '--output_dir', cached])
    with pytest.raises(SwiftError, match='--packing'):
        export_main(['--model', qwen2_dir, '--dataset', data, '--to_cached_dataset', 'true', '--packing', 'true'])
    for rlhf_type in ('grpo', 'rm'):  # rows ms-swift does not cache either (grpo), or encoded otherwise (rm)
        with pytest.raises(SwiftError, match=f'--cached_dataset: --rlhf_type {rlhf_type}'):
            parse_args(rlhf_arguments(), ['--model', 'm', '--rlhf_type', rlhf_type, '--cached_dataset', 'c/train',
                                          '--reward_funcs', 'accuracy', '--per_device_train_batch_size', '8'])


def test_dpo_on_cached_preference_rows_gives_the_raw_rows_losses(qwen2_dir, data, tmp_path):
    from swift.pipelines.rlhf import rlhf_main
    pairs = tmp_path / 'pairs.jsonl'
    pairs.write_text(''.join(json.dumps({'prompt': f'say {i}', 'chosen': f'{i} it is', 'rejected': f'no {i}'}) + '\n'
                             for i in range(12)))
    out = str(tmp_path / 'cached')
    export_main(['--model', qwen2_dir, '--dataset', str(pairs), '--to_cached_dataset', 'true', '--template_mode',
                 'rlhf', '--output_dir', out, '--max_length', '64', '--split_dataset_ratio', '0.25'])
    flags = ['--rlhf_type', 'dpo', '--model', qwen2_dir, *TRAIN_FLAGS, '--max_steps', '2']
    raw = rlhf_main([*flags, '--dataset', str(pairs), '--output_dir', str(tmp_path / 'raw')])
    from_cache = rlhf_main([*flags, '--cached_dataset', os.path.join(out, 'train'), '--cached_val_dataset',
                            os.path.join(out, 'val'), '--output_dir', str(tmp_path / 'from_cache')])
    assert len(_losses(raw)) == 2 and _losses(from_cache) == _losses(raw)
    with pytest.raises(SwiftError, match='holds rows of swift export --template_mode rlhf, this run reads rows of '
                                         '--template_mode train'):
        sft_main(['--model', qwen2_dir, '--cached_dataset', os.path.join(out, 'train'), '--output_dir',
                  str(tmp_path / 'sft'), *TRAIN_FLAGS])


def test_load_from_cache_file_reuses_encoded_rows_between_runs(qwen2_dir, data, tmp_path, monkeypatch):
    import pickle
    from datasets import config
    from swift.arguments import TrainArguments
    from swift.pipelines.common import load_folder_and_template
    from swift.pipelines.train import encode_split
    monkeypatch.setattr(config, 'HF_DATASETS_CACHE', str(tmp_path / 'cache'))
    rows = [{'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]}] * 3

    def encoded(*flags: str) -> list[dict]:
        args = parse_args(TrainArguments, ['--model', qwen2_dir, '--dataset', data, *flags])
        return encode_split(load_folder_and_template(args)[1], rows, args, 'train')

    first = encoded('--load_from_cache_file', 'true')
    [stored] = (tmp_path / 'cache' / 'swift_encoded').iterdir()
    cached, stats = pickle.loads(stored.read_bytes())  # prove the next run reads it: tamper with the stored rows
    stored.write_bytes(pickle.dumps(([{**cached[0], 'input_ids': [7] * len(cached[0]['input_ids'])}], stats)))
    assert encoded('--load_from_cache_file', 'true')[0]['input_ids'][0] == 7
    assert encoded('--load_from_cache_file', 'false') == first  # false encodes afresh
    assert encoded('--load_from_cache_file', 'true', '--max_length', '8', '--truncation_strategy', 'left') != first
    assert len(list((tmp_path / 'cache' / 'swift_encoded').iterdir())) == 2
