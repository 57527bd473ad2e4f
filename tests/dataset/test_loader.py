"""The loader: error locations, --strict, #N sampling, --columns, built-in self-cognition, split and packing."""
import collections
import json
import os
import re
from importlib import resources

import pytest

from swift.dataset import load_rows, pack_rows, parse_spec, split_rows
from swift.dataset.loader import DatasetSpec
from swift.utils import SwiftError

GOOD = {'query': 'q', 'response': 'r'}


def _write_jsonl(path, lines):
    """``lines`` are dicts (dumped as JSON) or raw strings (written as they are)."""
    path.write_text(''.join((json.dumps(x, ensure_ascii=False) if not isinstance(x, str) else x) + '\n'
                            for x in lines), encoding='utf-8')
    return str(path)


def _messages(loaded):
    return [row['messages'] for row in loaded.rows]


# ---- malformed rows ----------------------------------------------------------------------------------------------

BAD_ROWS = {
    'invalid_json': '{"query": "q", "response": ',
    'unknown_columns': {'foo': 'x', 'bar': 'y'},
    'assistant_without_content': {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant'}]},
    'history_not_a_list': {'query': 'q', 'response': 'r', 'history': 'aaaaa'},
    'history_not_pairs': {'query': 'q', 'response': 'r', 'history': [['only one']]},
    'not_an_object': '["q", "r"]',
    'unknown_role': {'messages': [{'role': 'robot', 'content': 'hi'}, {'role': 'assistant', 'content': 'x'}]},
    'system_not_first': {'messages': [{'role': 'user', 'content': 'u'}, {'role': 'system', 'content': 's'},
                                      {'role': 'assistant', 'content': 'a'}]},
    'content_not_string': {'messages': [{'role': 'user', 'content': 'u'}, {'role': 'assistant', 'content': 3}]},
    'empty_messages': {'messages': []},
    'alpaca_without_output': {'instruction': 'do it', 'input': 'now'},
}


@pytest.mark.parametrize('kind', sorted(BAD_ROWS))
def test_malformed_row_names_file_and_line(tmp_path, kind):
    # Blank lines count: the bad row is on line 4 of the file.
    path = _write_jsonl(tmp_path / 'data.jsonl', [GOOD, GOOD, '', BAD_ROWS[kind], GOOD])
    with pytest.raises(SwiftError) as info:
        load_rows([path])
    message = str(info.value)
    assert message.startswith(f'{path}:4:'), message
    assert f'{path}:5' not in message and f'{path}:2' not in message
    assert '\n' not in message


def test_error_messages_say_what_is_wrong(tmp_path):
    cases = {
        'invalid_json': 'invalid JSON',
        'unknown_columns': "unknown format: columns ['bar', 'foo']",
        'assistant_without_content': "messages[1] must be an object with 'role' and 'content'",
        'history_not_a_list': "'history' must be a list",
    }
    for kind, expected in cases.items():
        path = _write_jsonl(tmp_path / f'{kind}.jsonl', [BAD_ROWS[kind]])
        with pytest.raises(SwiftError, match=re.escape(expected)):
            load_rows([path])


def test_malformed_csv_row_line_counts_the_header(tmp_path):
    path = tmp_path / 'data.csv'
    # Row 2 (line 3) has an alpaca instruction but no output.
    path.write_text('instruction,output\nfirst,one\nsecond,\nthird,three\n', encoding='utf-8')
    with pytest.raises(SwiftError, match=re.escape(f'{path}:3:') + ".*'output'"):
        load_rows([str(path)])


def test_malformed_row_in_json_array_names_the_row(tmp_path):
    path = tmp_path / 'data.json'
    path.write_text(json.dumps([GOOD, {'foo': 1}]), encoding='utf-8')
    with pytest.raises(SwiftError, match=re.escape(f'{path}:row 2:')):
        load_rows([str(path)])


def test_strict_false_skips_and_counts_malformed_rows(tmp_path):
    lines = [GOOD, BAD_ROWS['unknown_columns'], {'query': 'q2', 'response': 'r2'}, BAD_ROWS['history_not_a_list'],
             BAD_ROWS['assistant_without_content'], {'query': 'q3', 'response': 'r3'}]
    path = _write_jsonl(tmp_path / 'data.jsonl', lines)
    loaded = load_rows([path], strict=False)
    assert loaded.skipped == 3
    assert _messages(loaded) == [
        [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': r}]
        for q, r in [('q', 'r'), ('q2', 'r2'), ('q3', 'r3')]]


def test_strict_false_skips_invalid_json_lines(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [GOOD, BAD_ROWS['invalid_json'], '{not json}', GOOD])
    loaded = load_rows([path], strict=False)
    assert loaded.skipped == 2
    assert len(loaded.rows) == 2


def test_strict_error_hints_at_strict_false(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [BAD_ROWS['unknown_columns']])
    with pytest.raises(SwiftError, match='--strict false'):
        load_rows([path])


# ---- dataset specs -----------------------------------------------------------------------------------------------

def test_parse_spec():
    assert parse_spec('a/b:sub#5') == DatasetSpec('a/b', 'sub', 5)
    assert parse_spec('a/b#12') == DatasetSpec('a/b', None, 12)
    assert parse_spec('a/b:sub') == DatasetSpec('a/b', 'sub', None)
    assert parse_spec('a/b') == DatasetSpec('a/b', None, None)
    assert parse_spec('swift/self-cognition#500') == DatasetSpec('swift/self-cognition', None, 500)


def test_parse_spec_takes_existing_path_whole(tmp_path):
    odd = tmp_path / 'odd:name#3.jsonl'
    odd.write_text(json.dumps(GOOD) + '\n', encoding='utf-8')
    assert parse_spec(str(odd)) == DatasetSpec(str(odd))
    assert len(load_rows([str(odd)]).rows) == 1


def test_parse_spec_rejects_non_numeric_count():
    with pytest.raises(SwiftError, match='row count'):
        parse_spec('a/b#many')


def _numbered(tmp_path, n, name='data.jsonl'):
    return _write_jsonl(tmp_path / name, [{'query': f'q{i}', 'response': f'r{i}'} for i in range(n)])


def _queries(loaded):
    return [row['messages'][0]['content'] for row in loaded.rows]


def test_sample_fewer_rows_than_the_data(tmp_path):
    path = _numbered(tmp_path, 10)
    queries = _queries(load_rows([f'{path}#4']))
    assert len(queries) == 4
    assert len(set(queries)) == 4  # sampled without replacement
    assert set(queries) <= {f'q{i}' for i in range(10)}
    # Sampling is reproducible with the same seed.
    assert _queries(load_rows([f'{path}#4'])) == queries


def test_sample_more_rows_than_the_data_repeats_it_whole(tmp_path):
    path = _numbered(tmp_path, 4)
    queries = _queries(load_rows([f'{path}#11']))
    assert len(queries) == 11
    counts = collections.Counter(queries)
    assert set(counts) == {f'q{i}' for i in range(4)}
    # 11 = 2 full copies of the 4 rows + 3 more, each a different row.
    assert sorted(counts.values()) == [2, 3, 3, 3]


def test_sample_exact_size_keeps_every_row(tmp_path):
    path = _numbered(tmp_path, 5)
    assert sorted(_queries(load_rows([f'{path}#5']))) == [f'q{i}' for i in range(5)]


def test_several_specs_concatenate_in_order(conformance_dir, tmp_path):
    a = os.path.join(conformance_dir, 'swift_single.jsonl')
    b = os.path.join(conformance_dir, 'alpaca2.csv')
    c = _numbered(tmp_path, 6)
    loaded = load_rows([a, b, f'{c}#2'])
    assert len(loaded.rows) == 3 + 3 + 2
    assert _messages(loaded)[:6] == _messages(load_rows([a])) + _messages(load_rows([b]))
    assert all(q.startswith('q') for q in _queries(loaded)[6:])


def test_columns_mapping(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [
        {'question': 'What is 2+2?', 'answer_text': '4', 'source': 'math'},
        {'question': 'Name a color', 'answer_text': 'blue', 'source': 'art'},
    ])
    loaded = load_rows([path], columns={'question': 'query', 'answer_text': 'response'})
    assert loaded.rows == [
        {'messages': [{'role': 'user', 'content': 'What is 2+2?'}, {'role': 'assistant', 'content': '4'}],
         'source': 'math'},
        {'messages': [{'role': 'user', 'content': 'Name a color'}, {'role': 'assistant', 'content': 'blue'}],
         'source': 'art'},
    ]
    # Without the mapping 'question' alone is a prompt for generation and 'answer_text' an extra column.
    assert load_rows([path]).rows[0] == {'messages': [{'role': 'user', 'content': 'What is 2+2?'}],
                                         'answer_text': '4', 'source': 'math'}


def test_columns_mapping_to_alpaca_and_system(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [{'sys': 'be brief', 'task': 'add', 'nums': '1 2', 'out': '3'}])
    loaded = load_rows([path], columns={'sys': 'system', 'task': 'instruction', 'nums': 'input', 'out': 'output'})
    assert _messages(loaded) == [[{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': 'add\n1 2'},
                                  {'role': 'assistant', 'content': '3'}]]


def test_extra_columns_pass_through(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [
        {'messages': [{'role': 'user', 'content': '1+1?'}], 'solution': '2', 'meta': {'level': 1}},
        {'query': '2+2?', 'response': '4', 'solution': '4'},
    ])
    rows = load_rows([path]).rows
    assert rows[0] == {'messages': [{'role': 'user', 'content': '1+1?'}], 'solution': '2', 'meta': {'level': 1}}
    assert rows[1] == {'messages': [{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}],
                       'solution': '4'}


def test_prompt_only_rows_for_generation(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [{'system': 's', 'prompt': 'p', 'solution': 'x'}])
    assert load_rows([path]).rows == [{'messages': [{'role': 'system', 'content': 's'},
                                                    {'role': 'user', 'content': 'p'}], 'solution': 'x'}]


def test_message_loss_field_is_kept(tmp_path):
    path = _write_jsonl(tmp_path / 'data.jsonl', [{'messages': [
        {'role': 'user', 'content': 'u'}, {'role': 'assistant', 'content': 'a', 'loss': False, 'weight': 3},
        {'role': 'user', 'content': 'u2'}, {'role': 'assistant', 'content': 'b'}]}])
    messages = load_rows([path]).rows[0]['messages']
    assert messages[1] == {'role': 'assistant', 'content': 'a', 'loss': False}
    assert messages[3] == {'role': 'assistant', 'content': 'b'}


# ---- swift/self-cognition ----------------------------------------------------------------------------------------

def _self_cognition_source():
    text = resources.files('swift.dataset').joinpath('data/self_cognition.jsonl').read_text('utf-8')
    return {row['query']: row for row in map(json.loads, text.splitlines()) if row}


def test_self_cognition_fills_names_per_language():
    source = _self_cognition_source()
    loaded = load_rows(['swift/self-cognition#30'], model_name=['小黄', 'Xiao Huang'], model_author=['魔搭', 'ModelScope'])
    assert len(loaded.rows) == 30
    tags = collections.Counter()
    for row in loaded.rows:
        assert set(row) == {'messages'}  # the 'tag' column is consumed
        user, assistant = row['messages']
        assert user['role'] == 'user' and assistant['role'] == 'assistant'
        original = source[user['content']]
        tags[original['tag']] += 1
        name, author = ('小黄', '魔搭') if original['tag'] == 'zh' else ('Xiao Huang', 'ModelScope')
        other_name = 'Xiao Huang' if original['tag'] == 'zh' else '小黄'
        expected = original['response'].replace('{{NAME}}', name).replace('{{AUTHOR}}', author)
        assert assistant['content'] == expected
        if '{{NAME}}' in original['response']:
            assert name in assistant['content']
        assert other_name not in assistant['content']
        assert '{{' not in user['content'] + assistant['content']
    assert tags['zh'] > 0 and tags['en'] > 0  # the sample draws from both languages


def test_self_cognition_single_name_serves_both_languages():
    loaded = load_rows(['swift/self-cognition#110'], model_name=['swifty'], model_author=['acme'])
    assert len(loaded.rows) == 110
    answers = [row['messages'][1]['content'] for row in loaded.rows]
    assert all('{{' not in a for a in answers)
    assert sum('swifty' in a for a in answers) == 110  # every row of the built-in data names the model


def test_self_cognition_larger_sample_repeats():
    loaded = load_rows(['swift/self-cognition#250'], model_name=['小黄', 'Xiao Huang'],
                       model_author=['魔搭', 'ModelScope'])
    assert len(loaded.rows) == 250
    assert len({row['messages'][0]['content'] for row in loaded.rows}) == len(_self_cognition_source())


@pytest.mark.parametrize('kwargs', [{}, {'model_name': ['x']}, {'model_author': ['y']},
                                    {'model_name': [], 'model_author': ['y']}])
def test_self_cognition_without_identity_is_an_error(kwargs):
    with pytest.raises(SwiftError, match='--model_name'):
        load_rows(['swift/self-cognition#5'], **kwargs)


# ---- split -------------------------------------------------------------------------------------------------------

def test_split_rows_is_deterministic_and_sized():
    rows = list(range(100))
    train, val = split_rows(rows, 0.1, seed=42)
    assert len(val) == 10 and len(train) == 90
    assert sorted(train + val) == rows  # a partition: nothing lost, nothing repeated
    assert split_rows(rows, 0.1, seed=42) == (train, val)
    assert split_rows(rows, 0.1, seed=7) != (train, val)
    assert rows == list(range(100))  # the input is not shuffled in place


def test_split_rows_sizes_at_the_edges():
    assert [len(x) for x in split_rows(list(range(10)), 0.01, seed=0)] == [9, 1]  # at least one val row
    assert [len(x) for x in split_rows(list(range(10)), 0.99, seed=0)] == [1, 9]  # at least one train row
    assert [len(x) for x in split_rows(list(range(10)), 0.0, seed=0)] == [10, 0]
    assert [len(x) for x in split_rows([1], 0.5, seed=0)] == [1, 0]
    assert [len(x) for x in split_rows(list(range(7)), 0.5, seed=0)] == [4, 3]


def test_split_rows_without_shuffle_takes_the_head():
    train, val = split_rows(list(range(10)), 0.3, seed=0, shuffle=False)
    assert val == [0, 1, 2] and train == list(range(3, 10))


# ---- packing -----------------------------------------------------------------------------------------------------

def _encoded(lengths):
    rows = []
    for i, n in enumerate(lengths):
        ids = [1000 * (i + 1) + j for j in range(n)]
        rows.append({'input_ids': ids, 'labels': [-100] + ids[1:]})
    return rows


def test_pack_rows_keeps_all_tokens_and_respects_max_length():
    lengths = [7, 3, 9, 2, 5, 5, 1, 8, 4]
    rows = _encoded(lengths)
    packed = pack_rows(rows, max_length=10)
    assert all(len(p['input_ids']) <= 10 for p in packed)
    assert all(len(p['input_ids']) == len(p['labels']) == sum(p['lengths']) for p in packed)
    # Every row appears whole and exactly once, labels still aligned with their tokens.
    pieces = []
    for p in packed:
        start = 0
        for n in p['lengths']:
            pieces.append((tuple(p['input_ids'][start:start + n]), tuple(p['labels'][start:start + n])))
            start += n
    expected = sorted((tuple(r['input_ids']), tuple(r['labels'])) for r in rows)
    assert sorted(pieces) == expected
    # First-fit decreasing packs these lengths optimally: 44 tokens in 5 packs of 10.
    assert len(packed) == -(-sum(lengths) // 10)

