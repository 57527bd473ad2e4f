"""Agent rows (tools, tool_call, tool_response) through the agent templates: the encoding equals the tokenizer's own
chat template with tools, labels cover exactly the assistant's calls and answers, and malformed calls stop the run
at their file:line."""
import json

import pytest

from swift.dataset import RowError, normalize_row
from swift.template import get_template
from swift.template.agent import get_agent_template
from swift.utils import SwiftError

TOOLS = [{'type': 'function', 'function': {
    'name': 'realtime_aqi', 'description': 'Get the air quality of a city.',
    'parameters': {'type': 'object', 'properties': {'city': {'type': 'string'}}, 'required': ['city']}}}]
CALLS = [{'name': 'realtime_aqi', 'arguments': {'city': 'Beijing'}}, {'name': 'realtime_aqi', 'arguments': {'city': '上海'}}]
RESULTS = ['{"aqi": 10}', '{"aqi": 72}']
ANSWER = 'Beijing 10, Shanghai 72.'
# ms-swift's agent row: tools as JSON text, parallel calls, their results, then the answer.
ROW = {'tools': json.dumps(TOOLS), 'messages': [
    {'role': 'user', 'content': 'Air quality in Beijing and Shanghai?'},
    *[{'role': 'tool_call', 'content': json.dumps(call, ensure_ascii=False)} for call in CALLS],
    *[{'role': 'tool_response', 'content': result} for result in RESULTS],
    {'role': 'assistant', 'content': ANSWER}]}
# The same conversation in OpenAI's shape, as a tokenizer's chat template takes it.
OPENAI_MESSAGES = [
    ROW['messages'][0],
    {'role': 'assistant', 'content': '', 'tool_calls': [{'type': 'function', 'function': c} for c in CALLS]},
    *[{'role': 'tool', 'content': result} for result in RESULTS],
    {'role': 'assistant', 'content': ANSWER}]


@pytest.fixture(scope='module')
def qwen2_5_tokenizer():
    from swift.utils.tiny_models import build_tokenizer
    return build_tokenizer('qwen2_5', 600)


def _trained_text(tokenizer, encoded) -> list[str]:
    """The runs of labelled tokens, decoded."""
    runs, run = [], []
    for token, label in zip(encoded['input_ids'], encoded['labels']):
        if label != -100:
            run.append(token)
        elif run:
            runs, run = runs + [tokenizer.decode(run)], []
    return runs + ([tokenizer.decode(run)] if run else [])


@pytest.mark.parametrize('row', [ROW, {'tools': TOOLS, 'messages': OPENAI_MESSAGES}], ids=['ms-swift', 'openai'])
def test_hermes_encoding_equals_the_tokenizers_chat_template_with_tools(qwen2_5_tokenizer, row):
    template = get_template('qwen2_5', qwen2_5_tokenizer)  # hermes: Qwen2.5's own agent template
    encoded = template.encode(normalize_row(row))
    expected = qwen2_5_tokenizer.apply_chat_template(OPENAI_MESSAGES, tools=TOOLS, tokenize=False)
    assert qwen2_5_tokenizer.decode(encoded['input_ids']) == expected
    assert encoded['input_ids'] == qwen2_5_tokenizer(expected, add_special_tokens=False)['input_ids']
    calls = '\n'.join(f'<tool_call>\n{json.dumps(c, ensure_ascii=False)}\n</tool_call>' for c in CALLS)
    assert _trained_text(qwen2_5_tokenizer, encoded) == [calls + '<|im_end|>', ANSWER + '<|im_end|>']
    # the prompt a server builds for the first turn is the chat template's generation prompt
    prompt = template.encode_prompt(OPENAI_MESSAGES[:1], tools=TOOLS)
    assert qwen2_5_tokenizer.decode(prompt) == qwen2_5_tokenizer.apply_chat_template(
        OPENAI_MESSAGES[:1], tools=TOOLS, tokenize=False, add_generation_prompt=True)


def test_react_en_writes_calls_and_observations_in_the_turn_and_trains_around_the_results(qwen2_5_tokenizer):
    template = get_template('qwen2_5', qwen2_5_tokenizer, agent_template='react_en')
    encoded = template.encode(normalize_row(ROW))
    text = qwen2_5_tokenizer.decode(encoded['input_ids'])
    assert text.startswith('<|im_start|>system\nAnswer the following questions as best you can.')
    assert 'Action: the action to take, should be one of [realtime_aqi]' in text
    turn = ("Action: realtime_aqi\nAction Input: {'city': 'Beijing'}\nAction: realtime_aqi\nAction Input: "
            "{'city': '上海'}\nObservation:")
    assert f'<|im_start|>assistant\n{turn}{{"aqi": 10}}\nObservation:{{"aqi": 72}}\n{ANSWER}<|im_end|>' in text
    # as ms-swift's docs show: the calls and the keyword train, the results do not
    assert _trained_text(qwen2_5_tokenizer, encoded) == [turn, ANSWER + '<|im_end|>']


def test_one_dataset_trains_other_families_through_their_agent_template(llama_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    encoded = get_template('llama3', tokenizer).encode(normalize_row(ROW))  # react_en by default
    text = tokenizer.decode(encoded['input_ids'])
    assert 'realtime_aqi: Call this tool to interact with the realtime_aqi API.' in text
    assert "Action Input: {'city': 'Beijing'}" in text


@pytest.mark.parametrize('name, answer, content, calls', [
    ('hermes', 'Let me look.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n'
     '{"name": "g", "arguments": {}}\n</tool_call>', 'Let me look.', [('f', '{"x": 1}'), ('g', '{}')]),
    ('hermes', 'no call here', 'no call here', []),
    ('react_en', "Thought: look it up\nAction: f\nAction Input: {'x': 1}\nObservation:", 'Thought: look it up',
     [('f', '{"x": 1}')]),
    ('react_zh', 'Action: f\nAction Input: {"x": "北京"}', None, [('f', '{"x": "北京"}')]),
])
def test_each_agent_template_parses_its_own_calls(name, answer, content, calls):
    parsed_content, parsed = get_agent_template(name).parse(answer)
    assert parsed_content == content
    assert [(c.name, c.arguments) for c in parsed] == calls


def test_ignore_empty_think_leaves_the_empty_block_out_of_the_loss(qwen2_5_tokenizer, qwen3_dir):
    from transformers import AutoTokenizer
    row = {'messages': [{'role': 'user', 'content': 'hi'},
                        {'role': 'assistant', 'content': '<think>\n\n</think>\n\nabc<think>\n\n</think>\n\n123'}]}

    def runs(tokenizer, template, scale, row):
        return _trained_text(tokenizer, get_template(template, tokenizer, loss_scale=scale).encode(row))

    assert runs(qwen2_5_tokenizer, 'qwen2_5', 'default', row) == [row['messages'][1]['content'] + '<|im_end|>']
    # ms-swift's example: only the leading empty block leaves the loss
    for scale in ('ignore_empty_think', 'default+ignore_empty_think', 'last_round+ignore_empty_think'):
        assert runs(qwen2_5_tokenizer, 'qwen2_5', scale, row) == ['abc<think>\n\n</think>\n\n123<|im_end|>']
    # Qwen3 writes the empty block in front of a final answer without reasoning: it trains only by default
    tokenizer = AutoTokenizer.from_pretrained(qwen3_dir)
    plain = {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'abc'}]}
    assert runs(tokenizer, 'qwen3', 'default', plain) == ['<think>\n\n</think>\n\nabc<|im_end|>']
    assert runs(tokenizer, 'qwen3', 'ignore_empty_think', plain) == ['abc<|im_end|>']
    with pytest.raises(SwiftError, match="'nonsense' is not built"):
        get_template('qwen3', tokenizer, loss_scale='nonsense')


def test_qwen3_keeps_reasoning_across_tool_results_and_starts_answers_as_asked(qwen3_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(qwen3_dir)
    messages = [{'role': 'user', 'content': 'q'},
                {'role': 'assistant', 'content': '<think>\nneed a tool\n</think>\n\n'},
                {'role': 'tool_call', 'content': json.dumps(CALLS[0])},
                {'role': 'tool', 'content': RESULTS[0]}]
    template = get_template('qwen3', tokenizer)
    text = tokenizer.decode(template.encode_prompt(messages, tools=TOOLS))
    # the tool result is no new question: the reasoning of the turn that called stays
    assert '<|im_start|>assistant\n<think>\nneed a tool\n</think>\n\n<tool_call>' in text
    assert text.endswith('</tool_response><|im_end|>\n<|im_start|>assistant\n')
    # OpenAI's reasoning_content field says the same
    as_field = [messages[0], {'role': 'assistant', 'content': '', 'reasoning_content': 'need a tool'}, *messages[2:]]
    assert tokenizer.decode(template.encode_prompt(as_field, tools=TOOLS)) == text
    no_think = get_template('qwen3', tokenizer, enable_thinking=False).encode_prompt(messages[:1])
    assert tokenizer.decode(no_think).endswith('<|im_start|>assistant\n<think>\n\n</think>\n\n')
    prefixed = get_template('qwen3', tokenizer, response_prefix='<think>\nOK').encode_prompt(messages[:1])
    assert tokenizer.decode(prefixed).endswith('<|im_start|>assistant\n<think>\nOK')


@pytest.mark.parametrize('message, reason', [
    ({'role': 'tool_call', 'content': '{"name": "f", "arguments": {"x": 1}'}, 'the tool call is not valid JSON'),
    ({'role': 'tool_call', 'content': '{"arguments": {}}'}, 'a tool call needs a "name" string'),
    ({'role': 'tool_call', 'content': '{"name": "f", "arguments": "{oops"}'}, "the arguments of 'f' are not valid"),
    ({'role': 'assistant', 'content': None, 'tool_calls': [{'function': {'name': 'f', 'arguments': '[1]'}}]},
     'must be a JSON object'),
])
def test_a_malformed_tool_call_is_a_row_error(message, reason):
    with pytest.raises(RowError, match=reason):
        normalize_row({'messages': [{'role': 'user', 'content': 'q'}, message]})


def test_a_malformed_tool_call_stops_sft_at_its_file_and_line(tmp_path, qwen2_dir):
    from swift.llm import sft_main
    data = tmp_path / 'agent.jsonl'
    bad = {**ROW, 'messages': [ROW['messages'][0], {'role': 'tool_call', 'content': '{"name": "realtime_aqi", '}]}
    data.write_text(json.dumps(ROW) + '\n' + json.dumps(bad) + '\n')
    with pytest.raises(SwiftError) as err:  # the command line prints it as one line, exit status 2
        sft_main(['--model', qwen2_dir, '--dataset', str(data), '--output_dir', str(tmp_path / 'out')])
    assert f'{data}:2' in str(err.value) and 'the tool call is not valid JSON' in str(err.value)
    assert '\n' not in str(err.value)
