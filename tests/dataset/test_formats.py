"""Every dataset format ms-swift's own test data uses loads to the exact conversation it means.

The files under ``conformance_dir`` come from ms-swift (tests/llm/data); the expectations below are written out by
hand from those files, not computed by the loader.
"""
import csv
import json
import os
import re

import pandas as pd
import pytest

from swift.dataset import load_rows
from swift.utils import SwiftError


def S(text):
    return {'role': 'system', 'content': text}


def U(text):
    return {'role': 'user', 'content': text}


def A(text):
    return {'role': 'assistant', 'content': text}


# Full expected conversations, row by row, for every file that must train with `swift sft`.
EXPECTED = {
    'alpaca.csv': [
        # system '00000' and output '3.3' stay strings; instruction and input join with a newline.
        [S('00000'), U('11111\n22222'), A('3.3')],
        [U('aaaaa'), A('ccccc')],  # empty system and empty input: no system message, no trailing newline
        [U('AAAAA\nBBBBB'), A('CCCCC')],
    ],
    'alpaca.jsonl': [
        [S('system123'), U('aaaaa'), A('bbbbb'), U('11111\n22222'), A('33333')],
        [U('aaaaa'), A('ccccc')],
        [U('AAAAA\nBBBBB'), A('CCCCC')],
    ],
    'alpaca2.csv': [
        [U('11111'), A('33333')],
        [U('aaaaa'), A('ccccc')],
        [U('AAAAA'), A('CCCCC')],
    ],
    'chatml.jsonl': [
        [S('00000'), U('11111'), A('22222')],
        [U('aaaaa'), A('bbbbb'), U('ccccc'), A('ddddd')],
        [U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD')],
    ],
    'conversations.jsonl': [
        [S('00000'), U('11111'), A('22222')],
        [U('aaaaa'), A('bbbbb'), U('ccccc'), A('ddddd')],
        [U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD')],
    ],
    'sharegpt.jsonl': [
        [S('00000'), U('11111'), A('22222')],
        [U('aaaaa'), A('bbbbb')],
        [U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD'), U('EEEEE'), A('FFFFF')],
    ],
    'swift_multi.json': [
        [S('00000'), U('55555'), A('66666')],
        [U('eeeee'), A('fffff')],
        [U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD'), U('EEEEE'), A('FFFFF')],
    ],
    'swift_multi.jsonl': [
        [S('00000'), U('55555'), A('66666')],
        [U('eeeee'), A('fffff')],
        [U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD'), U('EEEEE'), A('FFFFF')],
    ],
    'swift_single.csv': [
        [S('00000'), U('11111'), A('22222')],
        [U('aaaaa'), A('bbbbb')],
        [U('AAAAA'), A('BBBBB')],
    ],
    'swift_single.jsonl': [
        [S('00000'), U('11111'), A('22222')],
        [U('aaaaa'), A('bbbbb')],
        [U('AAAAA'), A('BBBBB')],
    ],
}

PRETRAIN = {'swift_pre.csv': ['11111', 'aaaaa', 'AAAAA'], 'swift_pre.jsonl': ['11111', 'aaaaa', 'AAAAA']}
MULTIMODAL = ['multi_modal_1.jsonl', 'multi_modal_2.jsonl', 'multi_modal_3.jsonl']
DEMO_URL = 'https://qianwen-res.oss-cn-beijing.aliyuncs.com/Qwen-VL/assets/demo.jpeg'


def _messages(loaded):
    return [row['messages'] for row in loaded.rows]


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_conformance_file_loads_to_expected_messages(conformance_dir, name):
    loaded = load_rows([os.path.join(conformance_dir, name)])
    assert loaded.skipped == 0
    assert _messages(loaded) == EXPECTED[name]
    # Nothing but the conversation comes out of these files: no stray columns such as an empty 'input'.
    assert all(set(row) == {'messages'} for row in loaded.rows)


def test_first_alpaca_jsonl_row_carries_system_and_history(conformance_dir):
    row = load_rows([os.path.join(conformance_dir, 'alpaca.jsonl')]).rows[0]
    assert row['messages'] == [
        {'role': 'system', 'content': 'system123'},
        {'role': 'user', 'content': 'aaaaa'}, {'role': 'assistant', 'content': 'bbbbb'},
        {'role': 'user', 'content': '11111\n22222'}, {'role': 'assistant', 'content': '33333'},
    ]


@pytest.mark.parametrize('name', ['alpaca.csv', 'swift_single.csv', 'alpaca2.csv', 'swift_pre.csv'])
def test_csv_values_stay_strings(conformance_dir, name):
    rows = load_rows([os.path.join(conformance_dir, name)]).rows
    for row in rows:
        for message in row['messages']:
            assert type(message['content']) is str, (name, message)
    if name == 'alpaca.csv':
        first = rows[0]['messages']
        assert first[0]['content'] == '00000'  # not 0
        assert first[-1]['content'] == '3.3'  # not 3.3 the float


@pytest.mark.parametrize('name', ['alpaca.csv', 'swift_single.csv'])
def test_empty_csv_system_gives_no_system_message(conformance_dir, name):
    rows = load_rows([os.path.join(conformance_dir, name)]).rows
    assert rows[0]['messages'][0]['role'] == 'system'
    for row in rows[1:]:
        assert [m['role'] for m in row['messages']] == ['user', 'assistant']


@pytest.mark.parametrize('name', sorted(PRETRAIN))
def test_pretraining_files_give_one_assistant_message(conformance_dir, name):
    loaded = load_rows([os.path.join(conformance_dir, name)])
    assert _messages(loaded) == [[A(text)] for text in PRETRAIN[name]]


@pytest.mark.parametrize('name', MULTIMODAL)
def test_multimodal_files_fail_naming_url_and_line(conformance_dir, name):
    path = os.path.join(conformance_dir, name)
    with pytest.raises(SwiftError) as info:
        load_rows([path])
    message = str(info.value)
    assert '\n' not in message  # one line
    assert DEMO_URL in message
    assert f'{path}:1' in message  # the first row already needs an image


def test_multimodal_rows_without_media_still_load_when_not_strict(conformance_dir):
    # multi_modal_1.jsonl: rows 1-2 carry <img>URL</img> in the query, row 3 is plain text.
    loaded = load_rows([os.path.join(conformance_dir, 'multi_modal_1.jsonl')], strict=False)
    assert loaded.skipped == 2
    assert _messages(loaded) == [[U('AAAAA'), A('BBBBB'), U('CCCCC'), A('DDDDD'), U('EEEEE'), A('FFFFF')]]


def test_multimodal_url_in_second_row_names_that_line(tmp_path):
    path = tmp_path / 'mm.jsonl'
    url = 'https://example.com/cat.png'
    path.write_text(json.dumps({'query': 'q', 'response': 'r'}) + '\n'
                    + json.dumps({'query': 'q2', 'response': 'r2', 'images': [url]}) + '\n', encoding='utf-8')
    with pytest.raises(SwiftError, match=re.escape(f'{path}:2') + '.*' + re.escape(url)):
        load_rows([str(path)])


# ---- the same rows in other containers ---------------------------------------------------------------------------

def _raw_rows(path):
    if path.endswith('.jsonl'):
        with open(path, encoding='utf-8') as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.endswith('.json'):
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    with open(path, encoding='utf-8', newline='') as f:
        return list(csv.DictReader(f))


JSONL_SOURCES = ['alpaca.jsonl', 'chatml.jsonl', 'conversations.jsonl', 'sharegpt.jsonl', 'swift_multi.jsonl',
                 'swift_single.jsonl', 'swift_pre.jsonl']
FLAT_SOURCES = ['alpaca.csv', 'alpaca2.csv', 'swift_single.csv', 'swift_pre.csv', 'swift_single.jsonl',
                'swift_pre.jsonl']


@pytest.mark.parametrize('name', JSONL_SOURCES)
def test_same_rows_as_json_array_load_identically(conformance_dir, tmp_path, name):
    source = os.path.join(conformance_dir, name)
    target = tmp_path / (os.path.splitext(name)[0] + '.json')
    target.write_text(json.dumps(_raw_rows(source), ensure_ascii=False), encoding='utf-8')
    assert _messages(load_rows([str(target)])) == _messages(load_rows([source]))


def test_single_json_object_is_one_row(tmp_path):
    target = tmp_path / 'one.json'
    target.write_text(json.dumps({'query': 'q', 'response': 'r'}), encoding='utf-8')
    assert _messages(load_rows([str(target)])) == [[U('q'), A('r')]]


@pytest.mark.parametrize('name', FLAT_SOURCES)
def test_same_rows_as_csv_load_identically(conformance_dir, tmp_path, name):
    source = os.path.join(conformance_dir, name)
    rows = _raw_rows(source)
    target = tmp_path / (os.path.splitext(name)[0] + '_copy.csv')
    # pandas writes the missing values of a column as empty cells.
    pd.DataFrame(rows).to_csv(target, index=False)
    assert _messages(load_rows([str(target)])) == _messages(load_rows([source]))


@pytest.mark.parametrize('name', JSONL_SOURCES + ['alpaca.csv', 'swift_single.csv'])
def test_same_rows_as_parquet_load_identically(conformance_dir, tmp_path, name):
    source = os.path.join(conformance_dir, name)
    target = tmp_path / (os.path.splitext(name)[0] + '.parquet')
    pd.DataFrame(_raw_rows(source)).to_parquet(target, index=False)
    assert _messages(load_rows([str(target)])) == _messages(load_rows([source]))


def test_csv_written_by_hand_keeps_numbers_as_text(tmp_path):
    target = tmp_path / 'nums.csv'
    target.write_text('query,response\n007,1e3\n-0,0.50\n', encoding='utf-8')
    assert _messages(load_rows([str(target)])) == [[U('007'), A('1e3')], [U('-0'), A('0.50')]]


@pytest.mark.parametrize('suffix', ['.jsonl', '.json', '.csv', '.parquet'])
def test_text_column_is_pretraining_text(tmp_path, suffix):
    rows = [{'text': 'the first document'}, {'text': 'the second\ndocument'}]
    target = tmp_path / f'pt{suffix}'
    if suffix == '.jsonl':
        target.write_text(''.join(json.dumps(r) + '\n' for r in rows), encoding='utf-8')
    elif suffix == '.json':
        target.write_text(json.dumps(rows), encoding='utf-8')
    elif suffix == '.csv':
        pd.DataFrame(rows).to_csv(target, index=False)
    else:
        pd.DataFrame(rows).to_parquet(target, index=False)
    assert _messages(load_rows([str(target)])) == [[A('the first document')], [A('the second\ndocument')]]


def test_unsupported_suffix_is_a_swift_error(tmp_path):
    target = tmp_path / 'data.txt'
    target.write_text('hello\n', encoding='utf-8')
    with pytest.raises(SwiftError, match=r'unsupported file type'):
        load_rows([str(target)])


def test_missing_data_file_is_a_swift_error(tmp_path):
    with pytest.raises(SwiftError, match='file not found'):
        load_rows([str(tmp_path / 'nope.jsonl')])


def test_directory_loads_its_data_files_in_name_order(conformance_dir, tmp_path):
    for name in ('b.jsonl', 'a.csv'):
        src = os.path.join(conformance_dir, 'swift_single.jsonl' if name.endswith('jsonl') else 'alpaca2.csv')
        (tmp_path / name).write_bytes(open(src, 'rb').read())
    (tmp_path / 'notes.txt').write_text('not data', encoding='utf-8')
    assert _messages(load_rows([str(tmp_path)])) == EXPECTED['alpaca2.csv'] + EXPECTED['swift_single.jsonl']


@pytest.mark.parametrize('suffix', ['.csv', '.jsonl', '.json'])
def test_byte_order_mark_is_ignored(tmp_path, suffix):
    # Excel and many Windows tools save UTF-8 with a byte-order mark.
    target = tmp_path / f'bom{suffix}'
    text = {'.csv': 'system,instruction,output\n,你好,00000\n',
            '.jsonl': json.dumps({'instruction': '你好', 'output': '00000'}, ensure_ascii=False) + '\n',
            '.json': json.dumps([{'instruction': '你好', 'output': '00000'}], ensure_ascii=False)}[suffix]
    target.write_text(text, encoding='utf-8-sig')
    assert target.read_bytes().startswith(b'\xef\xbb\xbf')
    assert _messages(load_rows([str(target)])) == [[U('你好'), A('00000')]]


def test_media_given_as_a_bare_string_is_named_whole(tmp_path):
    url = 'https://example.com/dog.jpg'
    path = tmp_path / 'mm.jsonl'
    path.write_text(json.dumps({'query': 'q', 'response': 'r', 'images': url}) + '\n', encoding='utf-8')
    with pytest.raises(SwiftError, match=re.escape(f'{path}:1') + '.*' + re.escape(repr(url))):
        load_rows([str(path)])
