"""Tool calling end to end: ms-swift's agent example trains from the command line, and ``swift deploy``'s server
answers the real ``openai`` client's ``tools`` with ``tool_calls`` read by the agent template's parser from what a
model trained to call the tool generates, whole and streamed."""
import json
import os
import re

import pytest

from tests.conftest import run_swift
from tests.deploy.support import serving

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, 'examples', 'train', 'agent', 'qwen2_5.sh')
DATA = os.path.join(REPO, 'examples', 'data', 'agent_sample.jsonl')
ROWS = [json.loads(line) for line in open(DATA, encoding='utf-8')]
TOOLS = json.loads(ROWS[0]['tools'])
QUESTION = ROWS[0]['messages'][0]['content']
CALL = json.loads(ROWS[0]['messages'][1]['content'])
RESULT = ROWS[0]['messages'][2]['content']
ANSWER = ROWS[0]['messages'][3]['content']


@pytest.fixture(scope='module')
def agent_model_dir(tmp_path_factory) -> str:
    """A tiny Qwen2.5-style model whose tokenizer knows the agent data's words (short sequences, fast steps)."""
    from swift.template.agent import get_agent_template
    from swift.utils.tiny_models import build_tiny_model
    system = get_agent_template('hermes').format_tools(TOOLS, 'You are Qwen, created by Alibaba Cloud.')
    return build_tiny_model(str(tmp_path_factory.mktemp('qwen2_5_agent')), 'qwen2_5', hidden_size=64,
                            vocab_size=1500, extra_texts=[system, *map(json.dumps, ROWS)] * 20)


def _example_flags() -> list[str]:
    """The flags of examples/train/agent/qwen2_5.sh (ms-swift's command), as the script passes them."""
    script = open(EXAMPLE, encoding='utf-8').read()
    command = script[script.index('swift sft'):].replace('\\\n', ' ')
    return re.findall(r"'[^']*'|\"[^\"]*\"|\S+", command)[2:]


def test_ms_swift_agent_example_trains_from_the_command_line(agent_model_dir, tmp_path):
    flags = _example_flags()
    swapped = {'--model': agent_model_dir, '--dataset': DATA, '--output_dir': str(tmp_path / 'output')}
    argv = [swapped.get(flags[i - 1], flag) for i, flag in enumerate(flags)] + ['--max_steps', '2']
    assert '--agent_template' in argv and argv[argv.index('--agent_template') + 1] == 'hermes'
    result = run_swift('sft', *argv, env={'OMP_NUM_THREADS': '1'})  # a tiny model: threads only contend
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = re.search(r'last_model_checkpoint: (\S+)', result.stdout + result.stderr).group(1)
    args = json.load(open(os.path.join(checkpoint, 'args.json')))
    assert args['agent_template'] == 'hermes' and os.path.exists(os.path.join(checkpoint, 'model.safetensors'))


def _train_to_call(model_dir: str):
    """The tiny model trained (full fine-tuning, AdamW) on the first agent row until greedy decoding repeats its
    call and its answer: a deterministic tool-calling model for the server tests."""
    import torch

    from swift.dataset import normalize_row
    from swift.model import get_model_tokenizer
    from swift.template import get_template
    torch.manual_seed(0)
    model, tokenizer = get_model_tokenizer(model_dir)
    template = get_template('qwen2_5', tokenizer)
    encoded = template.encode(normalize_row(ROWS[0]))
    input_ids, labels = torch.tensor([encoded['input_ids']]), torch.tensor([encoded['labels']])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(80):
        loss = model(input_ids=input_ids, labels=labels).loss
        if loss.item() < 0.02:
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model, template


@pytest.fixture(scope='module')
def trained_agent(agent_model_dir, tmp_path_factory):
    """The model trained to call, in memory and saved (model and tokenizer) for the command line."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only contend with each other (ten times slower on 2 cores)
    model, template = _train_to_call(agent_model_dir)
    saved = str(tmp_path_factory.mktemp('trained_agent'))
    model.save_pretrained(saved)
    template.tokenizer.save_pretrained(saved)
    yield model, template, saved
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tool_server(trained_agent):
    from swift.infer import PtEngine
    from swift.infer.server import create_app
    from swift.protocol import RequestConfig
    model, template, _ = trained_agent
    engine = PtEngine(model, template, max_batch_size=4)
    app = create_app(engine, 'agent', [], default_request_config=RequestConfig(temperature=0, max_tokens=64))
    with serving(app) as url:
        yield f'{url}/v1'


def _client(url: str):
    from openai import OpenAI
    return OpenAI(api_key='EMPTY', base_url=url)


def test_the_openai_client_gets_tool_calls(tool_server):
    client = _client(tool_server)
    response = client.chat.completions.create(model='agent', messages=[{'role': 'user', 'content': QUESTION}],
                                              tools=TOOLS, temperature=0)
    choice = response.choices[0]
    assert choice.finish_reason == 'tool_calls'
    assert choice.message.content is None
    call, = choice.message.tool_calls
    assert call.type == 'function' and call.id.startswith('call_')
    assert call.function.name == CALL['name'] and json.loads(call.function.arguments) == CALL['arguments']
    # without tools the same text is plain content
    plain = client.chat.completions.create(model='agent', messages=[{'role': 'user', 'content': QUESTION}])
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == 'stop'


def test_streamed_tool_calls_come_in_the_final_chunk(tool_server):
    stream = _client(tool_server).chat.completions.create(
        model='agent', messages=[{'role': 'user', 'content': QUESTION}], tools=TOOLS, temperature=0, stream=True)
    chunks = list(stream)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.choices[0].finish_reason == 'tool_calls'
    call, = final.choices[0].delta.tool_calls
    assert call.index == 0 and call.function.name == CALL['name']
    assert json.loads(call.function.arguments) == CALL['arguments']
    assert all(not c.choices or c.choices[0].delta.tool_calls is None for c in chunks if c is not final)


def test_the_tool_result_goes_back_and_the_answer_follows(tool_server):
    messages = [{'role': 'user', 'content': QUESTION},
                {'role': 'assistant', 'content': None, 'tool_calls': [
                    {'id': 'call_1', 'type': 'function',
                     'function': {'name': CALL['name'], 'arguments': json.dumps(CALL['arguments'])}}]},
                {'role': 'tool', 'tool_call_id': 'call_1', 'content': RESULT}]
    response = _client(tool_server).chat.completions.create(model='agent', messages=messages, tools=TOOLS,
                                                            temperature=0)
    assert response.choices[0].message.content == ANSWER
    assert response.choices[0].finish_reason == 'stop' and response.choices[0].message.tool_calls is None


def test_tool_choice_names_the_function_and_none_leaves_tools_out(tool_server):
    from openai import BadRequestError
    client = _client(tool_server)
    forced = client.chat.completions.create(
        model='agent', messages=[{'role': 'user', 'content': QUESTION}], tools=TOOLS, temperature=0,
        tool_choice={'type': 'function', 'function': {'name': CALL['name']}})
    assert forced.choices[0].message.tool_calls[0].function.name == CALL['name']
    left_out = client.chat.completions.create(model='agent', messages=[{'role': 'user', 'content': QUESTION}],
                                              tools=TOOLS, tool_choice='none')
    assert left_out.choices[0].message.tool_calls is None and left_out.choices[0].finish_reason != 'tool_calls'
    unknown = {'type': 'function', 'function': {'name': 'nope'}}
    with pytest.raises(BadRequestError, match="tool_choice names 'nope'"):
        client.chat.completions.create(model='agent', messages=[{'role': 'user', 'content': QUESTION}],
                                       tools=TOOLS, tool_choice=unknown)
    bad_history = [{'role': 'user', 'content': QUESTION}, {'role': 'assistant', 'content': None, 'tool_calls': [
        {'id': 'c', 'type': 'function', 'function': {'name': 'f', 'arguments': '{not json'}}]}]
    with pytest.raises(BadRequestError, match='not valid JSON'):
        client.chat.completions.create(model='agent', messages=bad_history, tools=TOOLS)


def test_swift_infer_writes_the_tool_calls_of_agent_rows(trained_agent, tmp_path):
    from swift.llm import infer_main
    data = tmp_path / 'questions.jsonl'
    data.write_text(json.dumps({'tools': ROWS[0]['tools'], 'messages': ROWS[0]['messages'][:1]}) + '\n')
    results = infer_main(['--model', trained_agent[2], '--val_dataset', str(data), '--temperature', '0',
                          '--max_new_tokens', '64', '--result_path', str(tmp_path / 'result.jsonl')])
    call, = results[0]['tool_calls']
    assert call['function']['name'] == CALL['name'] and json.loads(call['function']['arguments']) == CALL['arguments']
    written = json.loads((tmp_path / 'result.jsonl').read_text())
    assert written['tool_calls'] == results[0]['tool_calls'] and written['messages'][-1]['tool_calls']
