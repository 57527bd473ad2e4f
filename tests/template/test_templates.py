"""Templates against each tokenizer's own chat template: the ids must match and the labels must cover exactly the
assistant turns and their end-of-turn token.

The expected labels are found independently of the template code: the assistant spans are located with a regex in
the text ``tokenizer.apply_chat_template`` renders, and the labelled tokens are decoded back and compared with those
spans' text.
"""
import re

import pytest

from swift.model import get_model_tokenizer
from swift.template import get_template
from swift.utils import SwiftError

IGNORE = -100


def S(text):
    return {'role': 'system', 'content': text}


def U(text):
    return {'role': 'user', 'content': text}


def A(text, **extra):
    return {'role': 'assistant', 'content': text, **extra}


# fixture, detected template, regex of the assistant header, regex of its end-of-turn token.
FAMILIES = {
    'qwen2': ('qwen2_dir', 'qwen', r'<\|im_start\|>assistant\n', r'<\|im_end\|>'),
    'llama': ('llama_dir', 'llama3', r'<\|start_header_id\|>assistant<\|end_header_id\|>\n\n', r'<\|eot_id\|>'),
    'qwen3': ('qwen3_dir', 'qwen3', r'<\|im_start\|>assistant\n', r'<\|im_end\|>'),
    'zephyr': ('zephyr_dir', 'hf', r'<\|assistant\|>\n', r'</s>'),
}
GENERATION_HEADER = {'qwen2': '<|im_start|>assistant\n', 'qwen3': '<|im_start|>assistant\n',
                     'llama': '<|start_header_id|>assistant<|end_header_id|>\n\n', 'zephyr': '<|assistant|>\n'}

SINGLE = [U('hello who are you'), A('I am the model that can help')]
MULTI = [U('hello'), A('hello world'), U('what is your name'), A('my name is swift'), U('thanks'),
         A('yes and thanks for the data')]
WITH_SYSTEM = [S('you are a robot'), U('who are you'), A('I am a robot'), U('can you learn'), A('yes I can learn')]
CHINESE = [U('你好，你是谁？'), A('我是一个人工智能助手。')]
NUMBERS = [S('00000'), U('11111\n22222'), A('3.3')]
CONVERSATIONS = {'single': SINGLE, 'multi': MULTI, 'with_system': WITH_SYSTEM, 'chinese': CHINESE,
                 'numbers': NUMBERS}

THINK_SINGLE = [U('what is 2 plus 2'), A('<think>\nfirst add the numbers\n</think>\n\nthe answer is 4')]
THINK_MULTI = [U('what is 2 plus 2'), A('<think>\nreason one\n</think>\n\nanswer one'),
               U('and 3 plus 3'), A('<think>\nreason two\n</think>\n\nanswer two')]
THINK_REASONING_FIELD = [U('hi'), A('hello there', reasoning_content='the user greets me')]


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request):
    fixture, template_name, header, end = FAMILIES[request.param]
    model, tokenizer = get_model_tokenizer(request.getfixturevalue(fixture))
    return request.param, model.model_meta.template, tokenizer, header, end


# ---- helpers -----------------------------------------------------------------------------------------------------

def _plain(messages):
    return [{'role': m['role'], 'content': m['content'], **({'reasoning_content': m['reasoning_content']}
                                                            if 'reasoning_content' in m else {})}
            for m in messages]


def hf_ids(tokenizer, messages, **kwargs):
    out = tokenizer.apply_chat_template(_plain(messages), tokenize=True, **kwargs)
    if hasattr(out, 'keys'):  # BatchEncoding or dict
        out = out['input_ids']
    return list(out)


def hf_text(tokenizer, messages, **kwargs):
    return tokenizer.apply_chat_template(_plain(messages), tokenize=False, **kwargs)


def assistant_spans(text, header, end):
    """Character spans of each assistant turn's content plus its end-of-turn token, in rendering order."""
    return [m.span(1) for m in re.finditer(header + '(.*?' + end + ')', text, flags=re.S)]


def expected_labels(tokenizer, text, spans):
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [tok if any(s <= start < e for s, e in spans) else IGNORE
            for tok, (start, _) in zip(enc['input_ids'], enc['offset_mapping'])]


def labelled_runs(tokenizer, encoded):
    """The decoded text of each maximal run of labelled tokens."""
    runs, current = [], []
    for tok, label in zip(encoded['input_ids'], encoded['labels']):
        if label != IGNORE:
            assert label == tok  # a labelled position always holds its own token
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def check_labels(tokenizer, encoded, messages, header, end, which=None):
    """Labels equal input_ids exactly on the assistant turns listed in ``which`` (default: all), -100 elsewhere."""
    text = hf_text(tokenizer, messages)
    spans = assistant_spans(text, header, end)
    assert len(spans) == sum(m['role'] == 'assistant' for m in messages)
    if which is not None:
        spans = [spans[i] for i in which]
    assert encoded['labels'] == expected_labels(tokenizer, text, spans)
    assert labelled_runs(tokenizer, encoded) == [text[s:e] for s, e in spans]


# ---- detection and ids ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('fixture, expected', [
    ('qwen2_dir', 'qwen'), ('llama_dir', 'llama3'), ('qwen3_dir', 'qwen3'), ('zephyr_dir', 'hf'),
    ('base_dir', 'default'),
])
def test_template_detection(request, fixture, expected):
    model, tokenizer = get_model_tokenizer(request.getfixturevalue(fixture))
    assert model.model_meta.template == expected
    assert get_template(expected, tokenizer).template_type == expected


def test_unknown_template_is_a_swift_error(family):
    _, _, tokenizer, _, _ = family
    with pytest.raises(SwiftError, match='not registered'):
        get_template('no-such-template', tokenizer)


@pytest.mark.parametrize('conv', sorted(CONVERSATIONS))
def test_ids_match_chat_template_and_labels_cover_assistant_turns(family, conv):
    name, template_name, tokenizer, header, end = family
    messages = CONVERSATIONS[conv]
    template = get_template(template_name, tokenizer)
    encoded = template.encode({'messages': messages})
    assert encoded['input_ids'] == hf_ids(tokenizer, messages)
    assert len(encoded['labels']) == len(encoded['input_ids'])
    check_labels(tokenizer, encoded, messages, header, end)


def test_labels_end_with_the_end_of_turn_token(family):
    name, template_name, tokenizer, _, _ = family
    encoded = get_template(template_name, tokenizer).encode({'messages': MULTI})
    end_token = {'qwen2': '<|im_end|>', 'qwen3': '<|im_end|>', 'llama': '<|eot_id|>', 'zephyr': tokenizer.eos_token}
    end_id = tokenizer.convert_tokens_to_ids(end_token[name])
    labelled = [t for t in encoded['labels'] if t != IGNORE]
    assert labelled.count(end_id) == 3  # one per assistant turn, none of the user turns'
    texts = labelled_runs(tokenizer, encoded)
    if name == 'qwen3':  # the final answer carries an empty think block
        texts[-1] = texts[-1].replace('<think>\n\n</think>\n\n', '', 1)
    assert [t.replace(end_token[name], '') for t in texts] == [m['content'] for m in MULTI if m['role'] == 'assistant']
    assert all(t.endswith(end_token[name]) for t in texts)


def test_qwen_tool_message_matches_chat_template(qwen2_dir):
    _, tokenizer = get_model_tokenizer(qwen2_dir)
    messages = [U('what is the weather'), A('call weather'), {'role': 'tool', 'content': 'sunny'},
                A('it is sunny')]
    encoded = get_template('qwen', tokenizer).encode({'messages': messages})
    assert encoded['input_ids'] == hf_ids(tokenizer, messages)
    check_labels(tokenizer, encoded, messages, *FAMILIES['qwen2'][2:])


# ---- qwen3 reasoning -----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def qwen3(qwen3_dir):
    model, tokenizer = get_model_tokenizer(qwen3_dir)
    assert model.model_meta.template == 'qwen3'
    return get_template('qwen3', tokenizer), tokenizer


@pytest.mark.parametrize('messages', [THINK_SINGLE, THINK_MULTI, THINK_REASONING_FIELD, MULTI,
                                      [S('think well')] + THINK_MULTI],
                         ids=['think_single', 'think_multi', 'reasoning_field', 'no_think_multi', 'system'])
def test_qwen3_thinking_matches_chat_template(qwen3, messages):
    template, tokenizer = qwen3
    encoded = template.encode({'messages': messages})
    assert encoded['input_ids'] == hf_ids(tokenizer, messages)
    check_labels(tokenizer, encoded, messages, *FAMILIES['qwen3'][2:])


def test_qwen3_strips_history_thinking_and_keeps_the_last(qwen3):
    template, tokenizer = qwen3
    encoded = template.encode({'messages': THINK_MULTI})
    text = tokenizer.decode(encoded['input_ids'])
    assert 'reason one' not in text and 'answer one' in text
    assert '<think>\nreason two\n</think>\n\nanswer two<|im_end|>' in text
    assert labelled_runs(tokenizer, encoded) == ['answer one<|im_end|>',
                                                 '<think>\nreason two\n</think>\n\nanswer two<|im_end|>']


def test_qwen3_final_answer_gets_an_empty_think_block(qwen3):
    template, tokenizer = qwen3
    encoded = template.encode({'messages': SINGLE})
    assert labelled_runs(tokenizer, encoded) == ['<think>\n\n</think>\n\nI am the model that can help<|im_end|>']


def test_qwen3_generation_prompt_after_thinking_history(qwen3):
    # Written out by hand from Qwen3's real chat template: the last query is the final user turn, so the earlier
    # answer loses its thinking. The tiny tokenizer's copy of the template must agree.
    template, tokenizer = qwen3
    prompt = THINK_MULTI[:3]
    expected = ('<|im_start|>user\nwhat is 2 plus 2<|im_end|>\n<|im_start|>assistant\nanswer one<|im_end|>\n'
                '<|im_start|>user\nand 3 plus 3<|im_end|>\n<|im_start|>assistant\n')
    assert tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == expected
    for row in (prompt, THINK_MULTI):
        encoded = template.encode({'messages': row}, add_generation_prompt=True)
        assert encoded['input_ids'] == tokenizer(expected, add_special_tokens=False)['input_ids']


# ---- loss scale ----------------------------------------------------------------------------------------------------

def test_loss_scale_last_round(family):
    name, template_name, tokenizer, header, end = family
    encoded = get_template(template_name, tokenizer, loss_scale='last_round').encode({'messages': MULTI})
    assert encoded['input_ids'] == hf_ids(tokenizer, MULTI)
    check_labels(tokenizer, encoded, MULTI, header, end, which=[2])


def test_loss_scale_all(family):
    name, template_name, tokenizer, _, _ = family
    encoded = get_template(template_name, tokenizer, loss_scale='all').encode({'messages': WITH_SYSTEM})
    assert encoded['labels'] == encoded['input_ids']
    assert encoded['input_ids'] == hf_ids(tokenizer, WITH_SYSTEM)


def test_message_loss_false_is_masked(family):
    name, template_name, tokenizer, header, end = family
    messages = [U('hello'), A('hello world', loss=False), U('what is your name'), A('my name is swift'),
                U('thanks'), A('yes and thanks', loss=False)]
    encoded = get_template(template_name, tokenizer).encode({'messages': messages})
    assert encoded['input_ids'] == hf_ids(tokenizer, messages)
    check_labels(tokenizer, encoded, messages, header, end, which=[1])


def test_message_loss_true_overrides_last_round(family):
    name, template_name, tokenizer, header, end = family
    messages = [U('hello'), A('hello world', loss=True), U('what is your name'), A('my name is swift'),
                U('thanks'), A('yes and thanks')]
    encoded = get_template(template_name, tokenizer, loss_scale='last_round').encode({'messages': messages})
    check_labels(tokenizer, encoded, messages, header, end, which=[0, 2])


# ---- system priority -----------------------------------------------------------------------------------------------

def test_template_default_system(family):
    name, template_name, tokenizer, _, _ = family
    text = tokenizer.decode(get_template(template_name, tokenizer).encode({'messages': SINGLE})['input_ids'])
    if name == 'qwen2':
        assert text.startswith('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n')
    else:  # no default system for the others
        assert 'system' not in text


def test_default_system_argument_beats_template_default(family):
    name, template_name, tokenizer, _, _ = family
    template = get_template(template_name, tokenizer, default_system='Be terse.')
    encoded = template.encode({'messages': SINGLE})
    assert encoded['input_ids'] == hf_ids(tokenizer, [S('Be terse.')] + SINGLE)
    assert 'You are a helpful assistant.' not in tokenizer.decode(encoded['input_ids'])


def test_row_system_beats_default_system_argument(family):
    name, template_name, tokenizer, header, end = family
    template = get_template(template_name, tokenizer, default_system='Be terse.')
    messages = [S('Row system wins.')] + SINGLE
    encoded = template.encode({'messages': messages})
    assert encoded['input_ids'] == hf_ids(tokenizer, messages)
    text = tokenizer.decode(encoded['input_ids'])
    assert 'Row system wins.' in text and 'Be terse.' not in text
    check_labels(tokenizer, encoded, messages, header, end)


# ---- truncation ----------------------------------------------------------------------------------------------------

def test_truncation_strategies(family):
    name, template_name, tokenizer, _, _ = family
    full = get_template(template_name, tokenizer).encode({'messages': MULTI})
    n = len(full['input_ids'])
    limit = n - 7

    assert get_template(template_name, tokenizer, max_length=limit,
                        truncation_strategy='delete').encode({'messages': MULTI}) is None
    left = get_template(template_name, tokenizer, max_length=limit,
                        truncation_strategy='left').encode({'messages': MULTI})
    assert left == {'input_ids': full['input_ids'][-limit:], 'labels': full['labels'][-limit:]}
    right = get_template(template_name, tokenizer, max_length=limit,
                         truncation_strategy='right').encode({'messages': MULTI})
    assert right == {'input_ids': full['input_ids'][:limit], 'labels': full['labels'][:limit]}
    # Rows that fit are left alone whatever the strategy.
    for strategy in ('delete', 'left', 'right'):
        assert get_template(template_name, tokenizer, max_length=n,
                            truncation_strategy=strategy).encode({'messages': MULTI}) == full


# ---- generation prompt ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('conv', ['single', 'multi', 'with_system'])
def test_generation_prompt_matches_chat_template(family, conv):
    name, template_name, tokenizer, _, _ = family
    messages = CONVERSATIONS[conv]
    template = get_template(template_name, tokenizer)
    expected = hf_ids(tokenizer, messages[:-1], add_generation_prompt=True)
    # The last assistant message is dropped; a row that ends with the user gives the same prompt.
    with_answer = template.encode({'messages': messages}, add_generation_prompt=True)
    without_answer = template.encode({'messages': messages[:-1]}, add_generation_prompt=True)
    assert with_answer['input_ids'] == expected
    assert without_answer['input_ids'] == expected
    assert tokenizer.decode(expected).endswith(GENERATION_HEADER[name])
    assert messages[-1]['content'] not in tokenizer.decode(with_answer['input_ids'])


# ---- pre-training --------------------------------------------------------------------------------------------------

def test_plain_text_without_chat_template(family):
    name, template_name, tokenizer, _, _ = family
    text = 'the model can learn to think step by step'
    encoded = get_template(template_name, tokenizer, use_chat_template=False).encode(
        {'messages': [A(text)]})
    assert encoded['labels'] == encoded['input_ids']
    assert encoded['input_ids'][-1] == tokenizer.eos_token_id
    assert encoded['input_ids'][:-1] == tokenizer(text, add_special_tokens=False)['input_ids']
    assert tokenizer.decode(encoded['input_ids']) == text + tokenizer.eos_token


def test_plain_text_truncation(qwen2_dir):
    _, tokenizer = get_model_tokenizer(qwen2_dir)
    encoded = get_template('qwen', tokenizer, use_chat_template=False, max_length=4,
                           truncation_strategy='right').encode({'messages': [A('the model can learn to think')]})
    assert len(encoded['input_ids']) == 4 and encoded['labels'] == encoded['input_ids']


def test_default_template_for_base_model(base_dir):
    _, tokenizer = get_model_tokenizer(base_dir)
    assert tokenizer.chat_template is None
    template = get_template('default', tokenizer)
    encoded = template.encode({'messages': [S('be kind'), U('hello'), A('hello world'), U('thanks'), A('yes')]})
    eos = tokenizer.eos_token
    assert tokenizer.decode(encoded['input_ids']) == (
        f'be kind\n\n### Human:\nhello\n\n### Assistant:\nhello world{eos}\n\n'
        f'### Human:\nthanks\n\n### Assistant:\nyes{eos}\n\n')
    assert labelled_runs(tokenizer, encoded) == [f'hello world{eos}', f'yes{eos}']
    prompt = template.encode({'messages': [U('hello')]}, add_generation_prompt=True)
    assert tokenizer.decode(prompt['input_ids']) == '### Human:\nhello\n\n### Assistant:\n'
