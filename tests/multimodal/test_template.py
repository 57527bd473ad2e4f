"""Qwen2.5-VL's template: a row encodes to exactly what the processor makes of its own chat template, and only the
answers carry loss."""
import re

import pytest
import torch

from swift.model import get_model_tokenizer
from swift.template import DataCollator, get_template
from swift.template.base import IGNORE_INDEX
from swift.utils import SwiftError

from .helpers import square


@pytest.fixture(scope='module')
def processor(qwen2_5_vl_dir):
    return get_model_tokenizer(qwen2_5_vl_dir)[1]


def _parts(content: str) -> list[dict]:
    """'<image>text' as the processor's chat template wants it: content parts."""
    pieces = re.split(r'(<image>)', content)
    return [{'type': 'image'} if p == '<image>' else {'type': 'text', 'text': p} for p in pieces if p]


def _processor_encoding(processor, row, add_generation_prompt=False, **images_kwargs):
    messages = [{'role': m['role'], 'content': _parts(m['content'])} for m in row['messages']]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return processor(text=[text], images=row['images'], return_tensors='pt', **images_kwargs)


ROWS = {
    'one image': {'messages': [{'role': 'user', 'content': '<image>What colour is the square?'},
                               {'role': 'assistant', 'content': 'red'}], 'images': [square('red')]},
    'several, anywhere': {'messages': [
        {'role': 'system', 'content': 'You see pictures.'},
        {'role': 'user', 'content': 'Is <image> the same as <image>?'}, {'role': 'assistant', 'content': 'No.'},
        {'role': 'user', 'content': 'And this one: <image>'}, {'role': 'assistant', 'content': 'It is blue.'}],
        'images': [square('red', 56), square('green', 112), square('blue', 84)]},
}


@pytest.mark.parametrize('name', ROWS)
def test_encoding_equals_the_processor_on_its_chat_template(processor, name):
    row = ROWS[name]
    template = get_template('qwen2_5_vl', processor)
    encoded = template.encode(row)
    expected = _processor_encoding(processor, row)
    assert encoded['input_ids'] == expected['input_ids'][0].tolist()
    assert encoded['mm_token_type_ids'] == expected['mm_token_type_ids'][0].tolist()
    assert torch.equal(encoded['pixel_values'], expected['pixel_values'])
    assert torch.equal(encoded['image_grid_thw'], expected['image_grid_thw'])
    prompt = template.encode_prompt(row['messages'][:-1], {'images': row['images']})
    generation = _processor_encoding(processor, {**row, 'messages': row['messages'][:-1]}, add_generation_prompt=True)
    assert list(prompt) == generation['input_ids'][0].tolist()
    assert torch.equal(prompt.media['image_grid_thw'], generation['image_grid_thw'])


def test_only_answers_carry_loss_never_vision_tokens(processor):
    template = get_template('qwen2_5_vl', processor)
    row = {'messages': [{'role': 'user', 'content': '<image>Draw it again.'},
                        {'role': 'assistant', 'content': 'Here: <image> done'}], 'images': [square('red')] * 2}
    encoded = template.encode(row)
    trained = [t for t, label in zip(encoded['input_ids'], encoded['labels']) if label != IGNORE_INDEX]
    assert processor.tokenizer.decode(trained) == 'Here:  done<|im_end|>'  # the answer's image is not a target
    vision = set(processor.tokenizer.convert_tokens_to_ids(['<|vision_start|>', '<|image_pad|>', '<|vision_end|>']))
    assert vision <= set(encoded['input_ids'])


def test_max_pixels_bounds_the_image(processor, monkeypatch):
    row = {**ROWS['one image'], 'images': [square('red', 224)]}
    template = get_template('qwen2_5_vl', processor)
    assert template.encode(row)['image_grid_thw'].tolist() == [[1, 16, 16]]
    monkeypatch.setenv('MAX_PIXELS', str(56 * 56))
    encoded = template.encode(row)
    assert encoded['image_grid_thw'].tolist() == [[1, 4, 4]]
    expected = _processor_encoding(processor, row, size={'shortest_edge': 3136, 'longest_edge': 56 * 56})
    assert encoded['input_ids'] == expected['input_ids'][0].tolist()
    assert torch.equal(encoded['pixel_values'], expected['pixel_values'])


def test_placeholders_must_match_the_images(processor):
    template = get_template('qwen2_5_vl', processor)
    with pytest.raises(SwiftError, match='2 images but 1 <image> placeholders'):
        template.encode({**ROWS['one image'], 'images': [square('red')] * 2})
    with pytest.raises(SwiftError, match='takes text only'):
        get_template('qwen2_5', processor.tokenizer).encode(ROWS['one image'])


def test_collator_batches_pixels_in_row_order(processor):
    template = get_template('qwen2_5_vl', processor)
    rows = [template.encode(ROWS['several, anywhere']), template.encode(ROWS['one image']),
            template.encode({'messages': [{'role': 'user', 'content': 'no picture'},
                                          {'role': 'assistant', 'content': 'fine'}]})]
    for padding_free in (False, True):
        batch = DataCollator(processor.pad_token_id, padding_free=padding_free)(rows)
        assert torch.equal(batch['pixel_values'], torch.cat([rows[0]['pixel_values'], rows[1]['pixel_values']]))
        assert batch['image_grid_thw'].shape == (4, 3)
        assert batch['mm_token_type_ids'].shape == batch['input_ids'].shape
        assert int((batch['mm_token_type_ids'] == 1).sum()) == int((batch['input_ids'] == processor.image_token_id).sum())


@pytest.fixture
def small_frames(monkeypatch):
    """Video frames bounded like the 56x56 test images: 4 merged tokens per pair of frames."""
    monkeypatch.setenv('VIDEO_MIN_PIXELS', str(56 * 56))
    monkeypatch.setenv('VIDEO_MAX_PIXELS', str(56 * 56))


def test_a_video_of_frames_pairs_them_into_temporal_patches(processor, small_frames):
    template = get_template('qwen2_5_vl', processor)
    colours = ['red', 'blue', 'green']  # odd: the last frame is repeated to make two pairs
    row = {'messages': [{'role': 'user', 'content': '<video>What changes?'}, {'role': 'assistant', 'content': 'x'}],
           'videos': [[square(c) for c in colours]]}
    encoded = template.encode(row)
    assert encoded['video_grid_thw'].tolist() == [[2, 4, 4]]
    assert encoded['mm_token_type_ids'].count(2) == 2 * 4  # two temporal patches of 2x2 merged tokens
    assert encoded['second_per_grid_ts'].tolist() == [1.0]  # 2 frames per patch at FPS 2
    frames = {c: processor.image_processor(square(c), return_tensors='pt')['pixel_values'].view(16, 3, 2, -1)
              for c in colours}
    patches = encoded['pixel_values_videos'].view(2, 16, 3, 2, -1)
    for t, (first, second) in enumerate([('red', 'blue'), ('green', 'green')]):
        assert torch.equal(patches[t, :, :, 0], frames[first][:, :, 0])
        assert torch.equal(patches[t, :, :, 1], frames[second][:, :, 0])
    assert 'second_per_grid_ts' not in get_template('qwen2_vl', processor).encode(row)
    with pytest.raises(SwiftError, match='PyAV|no such file'):
        template.encode({**row, 'videos': ['clip.mp4']})


def test_pretraining_rows_train_on_all_text_but_vision_tokens(processor):
    template = get_template('qwen2_5_vl', processor, use_chat_template=False)
    encoded = template.encode({'messages': [{'role': 'assistant', 'content': 'A red square: <image> drawn.'}],
                               'images': [square('red')]})
    trained = [t for t, label in zip(encoded['input_ids'], encoded['labels']) if label != IGNORE_INDEX]
    assert processor.tokenizer.decode(trained) == 'A red square:  drawn.<|im_end|>'
    assert encoded['mm_token_type_ids'].count(1) == 4


def test_alignment_rows_with_images_keep_their_pixels(processor):
    template = get_template('qwen2_5_vl', processor)
    row = {**ROWS['one image'], 'rejected_response': 'blue'}
    pair, sft = template.encode_pair(row), template.encode(row)
    assert torch.equal(torch.as_tensor(pair['pixel_values']), sft['pixel_values'])
    assert pair['prompt_ids'] + pair['chosen_ids'] == sft['input_ids'][:len(pair['prompt_ids'] + pair['chosen_ids'])]
    kto = template.encode_completion({**ROWS['one image'], 'label': True})
    assert torch.equal(kto['image_grid_thw'], sft['image_grid_thw'])


def test_qwen2_vl_encodes_as_its_processor(tmp_path):
    from swift.utils.tiny_models import build_tiny_model
    model, processor = get_model_tokenizer(build_tiny_model(str(tmp_path), 'qwen2_vl'))
    assert (model.model_meta.model_type, model.model_meta.template) == ('qwen2_vl', 'qwen2_vl')
    encoded = get_template('qwen2_vl', processor).encode(ROWS['several, anywhere'])
    assert encoded['input_ids'] == _processor_encoding(processor, ROWS['several, anywhere'])['input_ids'][0].tolist()
    batch = DataCollator(processor.pad_token_id, padding_free=True)([encoded, encoded])
    assert torch.isfinite(model(**batch).loss)
