"""Media columns and placeholders: every way an image can be given, and the file:line errors of bad rows."""
import base64
import io
import os

import pytest

from swift.dataset import load_rows, normalize_row
from swift.utils import SwiftError

from .helpers import save_squares, square, write_jsonl

QUESTION = [{'role': 'user', 'content': '<image>What colour?'}, {'role': 'assistant', 'content': 'red'}]


@pytest.fixture
def pictures(tmp_path):
    save_squares(str(tmp_path / 'pics'))
    return tmp_path


def _load(folder, rows, **kwargs):
    return load_rows([write_jsonl(str(folder / 'data.jsonl'), rows)], **kwargs)


def test_relative_paths_are_read_from_the_dataset_folder(pictures, monkeypatch):
    monkeypatch.chdir('/')
    rows = _load(pictures, [{'messages': QUESTION, 'images': ['pics/red.png']},
                            {'query': 'What colour?', 'response': 'blue', 'image': 'pics/blue.png'}]).rows
    assert rows[0]['images'] == [str(pictures / 'pics' / 'red.png')]
    assert rows[0]['messages'][0]['content'] == '<image>What colour?'
    # no placeholder: one goes before the first user message's text, as in ms-swift
    assert rows[1]['images'] == [str(pictures / 'pics' / 'blue.png')]
    assert rows[1]['messages'][0]['content'] == '<image>What colour?'


def test_placeholders_anywhere_several_per_row(pictures):
    messages = [{'role': 'user', 'content': 'Compare <image> with <image>.'},
                {'role': 'assistant', 'content': 'Both squares.'},
                {'role': 'user', 'content': 'And <image>?'}, {'role': 'assistant', 'content': 'Green.'}]
    row, = _load(pictures, [{'messages': messages, 'images': ['pics/red.png', 'pics/blue.png',
                                                             'pics/green.png']}]).rows
    assert [os.path.basename(p) for p in row['images']] == ['red.png', 'blue.png', 'green.png']
    assert row['messages'][2]['content'] == 'And <image>?'


def test_every_local_form_of_an_image(pictures):
    buffer = io.BytesIO()
    square('red').save(buffer, format='PNG')
    data = buffer.getvalue()
    b64 = base64.b64encode(data).decode()
    for image in (b64, f'data:image/png;base64,{b64}', data, {'bytes': data, 'path': 'x.png'}, square('blue'),
                  {'bytes': None, 'path': str(pictures / 'pics' / 'red.png')}):
        row = normalize_row({'messages': QUESTION, 'images': [image]})
        assert len(row['images']) == 1 and row['messages'][0]['content'] == '<image>What colour?'


def test_inline_img_tags_and_openai_content_parts(pictures):
    red = str(pictures / 'pics' / 'red.png')
    row = normalize_row({'query': f'<img>{red}</img>What colour?', 'response': 'red'})
    assert row['images'] == [red] and row['messages'][0]['content'] == '<image>What colour?'
    parts = [{'type': 'text', 'text': 'Is '}, {'type': 'image_url', 'image_url': {'url': red}},
             {'type': 'text', 'text': ' red?'}]
    row = normalize_row({'messages': [{'role': 'user', 'content': parts}, {'role': 'assistant', 'content': 'yes'}]})
    assert row['images'] == [red] and row['messages'][0]['content'] == 'Is <image> red?'


def test_text_rows_are_unchanged():
    assert normalize_row({'query': 'hi', 'response': 'hello'}) == {
        'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]}


@pytest.mark.parametrize('row, reason', [
    ({'messages': QUESTION, 'images': ['pics/missing.png']}, "images[0] 'pics/missing.png': no such file"),
    ({'messages': QUESTION, 'images': ['pics/broken.png']}, 'not a readable image'),
    ({'messages': QUESTION, 'images': ['pics/red.png', 'pics/blue.png']}, '1 <image> placeholder but 2 images'),
    ({'messages': QUESTION, 'images': ['https://example.com/cat.png']},
     'cannot fetch https://example.com/cat.png: HF_HUB_OFFLINE=1'),
])
def test_bad_rows_name_file_line_and_reason(pictures, row, reason):
    (pictures / 'pics' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    good = {'messages': QUESTION, 'images': ['pics/red.png']}
    with pytest.raises(SwiftError) as err:
        _load(pictures, [good, row])
    message = str(err.value)
    assert message.startswith(f"{pictures / 'data.jsonl'}:2: ") and reason in message and '\n' not in message
    loaded = _load(pictures, [good, row, good], strict=False)
    assert (len(loaded.rows), loaded.skipped) == (2, 1)


def test_latex_ocr_subset_as_the_hub_stores_it(tmp_path, monkeypatch):
    """Seed 001's 'AI-ModelScope/LaTeX_OCR:human_handwrite': parquet files of {'image': {'bytes', 'path'}, 'text'}
    rows, one folder per subset; the test split is left out and ms-swift's question is asked."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    buffer = io.BytesIO()
    square('red').save(buffer, format='PNG')
    for subset, split in (('human_handwrite', 'train'), ('human_handwrite', 'test'), ('synthetic_handwrite', 'train')):
        (tmp_path / subset).mkdir(exist_ok=True)
        rows = [{'image': {'bytes': buffer.getvalue(), 'path': 'x.png'}, 'text': f'{subset} {split}'}]
        pq.write_table(pa.Table.from_pylist(rows), str(tmp_path / subset / f'{split}-00000-of-00001.parquet'))
    monkeypatch.setattr('swift.dataset.loader.download_dataset', lambda repo, **kwargs: str(tmp_path))
    rows = load_rows(['AI-ModelScope/LaTeX_OCR:human_handwrite']).rows
    assert [row['messages'] for row in rows] == [[
        {'role': 'user', 'content': '<image>Using LaTeX to perform OCR on the image.'},
        {'role': 'assistant', 'content': 'human_handwrite train'}]]
    assert rows[0]['images'][0]['bytes'] == buffer.getvalue()
