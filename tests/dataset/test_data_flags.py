"""ms-swift's data flags that act here: --disable_auto_column_mapping, --interleave_prob/--stopping_strategy,
--val_dataset_shuffle, --load_from_cache_file (issue 13)."""
import json
import os

import pytest
from datasets import Dataset, interleave_datasets

from swift.arguments import InferArguments, parse_args
from swift.dataset import load_rows
from swift.pipelines.common import load_dataset_rows
from swift.utils import SwiftError


def _write(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows))
    return str(path)


def test_disable_auto_column_mapping(tmp_path):
    path = _write(tmp_path / 'd.jsonl', [{'question': 'q?', 'answer': 'a.'}])
    assert load_rows([path]).rows[0]['messages'][-1]['content'] == 'a.'
    with pytest.raises(SwiftError, match='unknown format'):
        load_rows([path], auto_columns=False)
    row = load_rows([path], auto_columns=False, columns={'question': 'query', 'answer': 'response'}).rows[0]
    assert [m['content'] for m in row['messages']] == ['q?', 'a.']
    # query/response is the standard form, still read; the other names stay extra columns
    path2 = _write(tmp_path / 'e.jsonl', [{'query': 'q', 'response': 'r', 'answer': 'x'}])
    row = load_rows([path2], auto_columns=False).rows[0]
    assert row['answer'] == 'x' and row['messages'][-1]['content'] == 'r'


def _two(tmp_path):
    a = _write(tmp_path / 'a.jsonl', [{'query': f'a{i}', 'response': 'r'} for i in range(3)])
    b = _write(tmp_path / 'b.jsonl', [{'query': f'b{i}', 'response': 'r'} for i in range(10)])
    return a, b


@pytest.mark.parametrize('strategy', ['first_exhausted', 'all_exhausted'])
def test_interleave_matches_datasets(tmp_path, strategy):
    a, b = _two(tmp_path)
    rows = load_rows([a, b], interleave_prob=[0.5, 0.5], seed=7, stopping_strategy=strategy).rows
    expected = interleave_datasets([Dataset.from_dict({'q': [f'a{i}' for i in range(3)]}),
                                    Dataset.from_dict({'q': [f'b{i}' for i in range(10)]})],
                                   probabilities=[0.5, 0.5], seed=7, stopping_strategy=strategy)['q']
    assert [r['messages'][0]['content'] for r in rows] == expected
    assert len(rows) != 13  # not a concatenation


def test_interleave_prob_count_checked(tmp_path):
    a, b = _two(tmp_path)
    with pytest.raises(SwiftError, match='--interleave_prob'):
        load_rows([a, b], interleave_prob=[1.0])
    with pytest.raises(SwiftError, match='--interleave_prob'):
        load_rows([a, b], interleave_prob=[0.9, 0.9])


def test_val_dataset_shuffle(tmp_path):
    a, b = _two(tmp_path)
    plain = parse_args(InferArguments, ['--model', 'm', '--val_dataset', b])
    shuffled = parse_args(InferArguments, ['--model', 'm', '--val_dataset', b, '--val_dataset_shuffle', 'true'])
    order = [r['messages'][0]['content'] for r in load_dataset_rows(plain, plain.val_dataset)]
    mixed = [r['messages'][0]['content'] for r in load_dataset_rows(shuffled, shuffled.val_dataset)]
    assert order == [f'b{i}' for i in range(10)]
    assert sorted(mixed) == sorted(order) and mixed != order


def test_load_from_cache_file(tmp_path, monkeypatch):
    from datasets import config
    monkeypatch.setattr(config, 'HF_DATASETS_CACHE', str(tmp_path / 'cache'))
    path = _write(tmp_path / 'd.jsonl', [{'query': 'q', 'response': 'r'}])
    assert load_rows([path]).rows and not os.path.exists(tmp_path / 'cache')
    first = load_rows([path], cache=True).rows
    [stored] = os.listdir(tmp_path / 'cache' / 'swift_rows')
    # Prove the second load reads the cache: tamper with the stored rows.
    import pickle
    file = tmp_path / 'cache' / 'swift_rows' / stored
    cached = pickle.loads(file.read_bytes())
    cached[0][1]['messages'][-1]['content'] = 'from cache'
    file.write_bytes(pickle.dumps(cached))
    assert load_rows([path], cache=True).rows[0]['messages'][-1]['content'] == 'from cache'
    assert load_rows([path], cache=False).rows == first  # false normalises afresh
    # other content or settings miss the cache
    assert load_rows([path], cache=True, auto_columns=False).rows == first
    _write(tmp_path / 'd.jsonl', [{'query': 'q', 'response': 'r2'}])
    assert load_rows([path], cache=True).rows[0]['messages'][-1]['content'] == 'r2'


def test_infer_backend_transformers():
    assert parse_args(InferArguments, ['--model', 'm', '--infer_backend', 'transformers']).infer_backend == 'pt'
    with pytest.raises(SwiftError, match='infer_backend'):
        parse_args(InferArguments, ['--model', 'm', '--infer_backend', 'hf'])
