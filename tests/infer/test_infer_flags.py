"""ms-swift's batch-inference flags (issue 13): --write_batch_size, --val_dataset_sample, --metric acc,
--logprobs/--top_logprobs; on the tiny qwen2 model with the pt backend."""
import json

import pytest

from swift.arguments import InferArguments, parse_args
from swift.pipelines.infer import infer_main, sample_rows
from swift.utils import SwiftError


def _dataset(tmp_path, n=3):
    path = tmp_path / 'val.jsonl'
    path.write_text(''.join(json.dumps({'query': f'q{i}', 'response': f'r{i}'}) + '\n' for i in range(n)))
    return str(path)


def test_batch_flags(qwen2_dir, tmp_path, monkeypatch):
    result_path = tmp_path / 'out.jsonl'
    written = []
    import swift.pipelines.infer as infer
    real = infer._append_jsonl
    monkeypatch.setattr(infer, '_append_jsonl', lambda path, rows: (written.append(len(rows)), real(path, rows)))
    results = infer_main(['--model', qwen2_dir, '--val_dataset', _dataset(tmp_path), '--val_dataset_sample', '5',
                          '--write_batch_size', '2', '--max_new_tokens', '2', '--temperature', '0', '--metric', 'acc',
                          '--logprobs', 'true', '--top_logprobs', '2', '--result_path', str(result_path)])
    assert len(results) == 5 and written == [2, 1]  # first 2 written fresh, then appended by 2 and 1
    lines = [json.loads(line) for line in result_path.read_text().splitlines()]
    assert [r['response'] for r in lines] == [r['response'] for r in results]
    assert sorted(r['labels'] for r in lines[:3]) == ['r0', 'r1', 'r2']  # one whole copy, then 2 drawn
    entry = lines[0]['logprobs']['content'][0]
    assert entry['logprob'] <= 0 and len(entry['top_logprobs']) == 2


def test_sample_rows_as_ms_swift():
    rows = list(range(4))
    assert sample_rows(rows, None, True, 42) == rows
    assert sample_rows(rows, 6, False, 42) == [0, 1, 2, 3, 0, 1]
    drawn = sample_rows(rows, 3, True, 42)
    assert len(set(drawn)) == 3 and drawn == sample_rows(rows, 3, True, 42) and drawn != sample_rows(rows, 3, True, 1)


def test_metric_acc(qwen2_dir, tmp_path, caplog):
    import swift.pipelines.infer as infer
    assert infer.metric('acc', [{'response': 'a', 'labels': 'a'}, {'response': 'b', 'labels': 'c'},
                                {'response': 'x', 'labels': None}]) == 0.5
    with pytest.raises(SwiftError, match='--metric acc needs labels'):
        infer.metric('acc', [{'response': 'a', 'labels': None}])


def test_bad_values_are_one_line():
    with pytest.raises(SwiftError, match='--metric rouge'):
        parse_args(InferArguments, ['--model', 'm', '--metric', 'rouge'])
    with pytest.raises(SwiftError, match='--top_logprobs'):
        parse_args(InferArguments, ['--model', 'm', '--logprobs', 'true', '--top_logprobs', '21'])
    with pytest.raises(SwiftError, match='--val_dataset_sample'):
        parse_args(InferArguments, ['--model', 'm', '--val_dataset_sample', '-1'])
