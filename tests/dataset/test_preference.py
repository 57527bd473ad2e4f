"""Preference and KTO rows: trl's columns become the seeds' form, and the template encodes the pair as sft does."""
import pytest
from transformers import AutoTokenizer

from swift.dataset import RowError, check_kto, check_pair, normalize_row
from swift.template import get_template

USER, ANSWER = {'role': 'user', 'content': 'Hi?'}, {'role': 'assistant', 'content': 'Hello!'}


@pytest.mark.parametrize('row', [
    {'prompt': 'Hi?', 'chosen': 'Hello!', 'rejected': 'Go.'},  # strings
    {'prompt': [USER], 'chosen': [ANSWER], 'rejected': [{'role': 'assistant', 'content': 'Go.'}]},  # trl messages
    {'chosen': [USER, ANSWER], 'rejected': [USER, {'role': 'assistant', 'content': 'Go.'}]},  # implicit prompt
    {'messages': [USER, ANSWER], 'rejected_response': 'Go.'},  # the seeds' form
    {'query': 'Hi?', 'response': 'Hello!', 'rejected_response': 'Go.'},
])
def test_every_preference_format_becomes_messages_and_rejected_response(row):
    normalized = normalize_row(row)
    check_pair(normalized)
    assert normalized['messages'] == [USER, ANSWER]
    assert normalized['rejected_response'] == 'Go.'


def test_a_system_column_precedes_a_string_prompt():
    normalized = normalize_row({'system': 'Be kind.', 'prompt': 'Hi?', 'chosen': 'Hello!', 'rejected': 'Go.'})
    assert normalized['messages'][0] == {'role': 'system', 'content': 'Be kind.'}


@pytest.mark.parametrize('row, message', [
    ({'messages': [USER, ANSWER]}, 'no rejected answer'),
    ({'messages': [USER, ANSWER], 'rejected_response': ''}, 'no rejected answer'),
    ({'messages': [USER], 'rejected_response': 'Go.'}, 'must end in an assistant answer'),
    ({'chosen': 'Hello!', 'rejected': 'Go.'}, "a 'prompt' column is needed"),
])
def test_incomplete_pairs_are_refused(row, message):
    with pytest.raises(RowError, match=message):
        check_pair(normalize_row(row))


@pytest.mark.parametrize('label, expected', [(True, True), (False, False), ('true', True), ('False', False)])
def test_kto_labels_are_booleans(label, expected):
    row = normalize_row({'messages': [USER, ANSWER], 'label': label})
    check_kto(row)
    assert row['label'] is expected


@pytest.mark.parametrize('label', [1, 'yes', None])
def test_kto_refuses_other_labels(label):
    with pytest.raises(RowError, match="boolean 'label'"):
        check_kto(normalize_row({'messages': [USER, ANSWER], 'label': label}))


def test_encode_pair_matches_sft_encoding(qwen2_dir):
    """prompt + chosen is the sft encoding up to the end of the answer's loss, and the answer is what sft learns."""
    template = get_template('qwen2_5', AutoTokenizer.from_pretrained(qwen2_dir), default_system='Sys.')
    row = {'messages': [{'role': 'user', 'content': 'First?'}, {'role': 'assistant', 'content': 'One.'}, USER,
                        ANSWER], 'rejected_response': 'Go away.'}
    pair = template.encode_pair(row)
    sft = template.encode(row)
    learned = [t for t in sft['labels'][len(pair['prompt_ids']):] if t != -100]
    prompt_and_chosen = pair['prompt_ids'] + pair['chosen_ids']
    assert sft['input_ids'][:len(prompt_and_chosen)] == prompt_and_chosen
    assert pair['chosen_ids'] == learned  # exactly the final answer's loss tokens, end-of-turn included
    assert template.decode(pair['chosen_ids']) == 'Hello!'
    assert template.tokenizer.decode(pair['rejected_ids']) == 'Go away.<|im_end|>'
    prompt = template.tokenizer.decode(pair['prompt_ids'])
    assert prompt.startswith('<|im_start|>system\nSys.') and prompt.endswith('<|im_start|>assistant\n')


def test_encode_completion_splits_prompt_and_answer(qwen2_dir):
    template = get_template('qwen2_5', AutoTokenizer.from_pretrained(qwen2_dir))
    encoded = template.encode_completion({'messages': [USER, ANSWER], 'label': True})
    assert template.tokenizer.decode(encoded['completion_ids']) == 'Hello!<|im_end|>'
    whole = encoded['prompt_ids'] + encoded['completion_ids']
    assert template.encode({'messages': [USER, ANSWER]})['input_ids'][:len(whole)] == whole
