"""``swift deploy`` end to end: the real command in a subprocess, the real openai client, plain HTTP requests.

The server runs a tiny Qwen2-style model with two LoRA adapters whose random weights make their greedy answers
differ from the base model's, so choosing an adapter by model name is observable.
"""
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from .support import free_port, make_adapter, make_reward_model, running_swift, serving

SEED_STREAM_MAX_TOKENS = 16  # the server's --max_new_tokens: the seed's streaming call sends no max_tokens


@pytest.fixture(scope='module')
def adapters(qwen2_dir, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp('adapters')
    paths = {name: make_adapter(qwen2_dir, str(root / name), seed) for seed, name in enumerate(['lora1', 'lora2'])}
    # As a training run would: args.json names the base, so the seed's command needs no --model.
    with open(os.path.join(paths['lora1'], 'args.json'), 'w') as f:
        json.dump({'model': qwen2_dir, 'template': 'qwen'}, f)
    return paths


@pytest.fixture(scope='module')
def server(adapters, tmp_path_factory):
    """The seed's command: ``swift deploy --adapters lora1=... lora2=...``, on a free loopback port."""
    port = free_port()
    log_path = str(tmp_path_factory.mktemp('deploy') / 'server.log')
    argv = ['deploy', '--adapters', f"lora1={adapters['lora1']}", f"lora2={adapters['lora2']}", '--infer_backend',
            'pt', '--temperature', '0', '--max_new_tokens', str(SEED_STREAM_MAX_TOKENS), '--host', '127.0.0.1',
            '--port', str(port), '--log_interval', '1']
    url = f'http://127.0.0.1:{port}'
    with running_swift(argv, f'{url}/health', log_path):
        yield {'url': url, 'port': port, 'log': log_path}


def _request(url: str, path: str, body: bytes | dict | None = None, headers: dict | None = None,
             method: str | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _chat(url: str, model: str, content: str, **fields) -> dict:
    status, raw = _request(url, '/v1/chat/completions',
                           {'model': model, 'messages': [{'role': 'user', 'content': content}], **fields})
    assert status == 200, raw
    return json.loads(raw)


def _sse_events(raw: bytes) -> list:
    """The payloads of a server-sent event stream; checks the framing on the way."""
    blocks = raw.decode().split('\n\n')
    assert blocks[-1] == '' and blocks[-2] == 'data: [DONE]', raw[-200:]
    assert all(block.startswith('data: ') for block in blocks[:-1])
    return [json.loads(block[len('data: '):]) for block in blocks[:-2]]


# ---- the seed's client ----------------------------------------------------------------------------------------
def test_seed_openai_client_code(server, qwen2_dir, capsys):
    from openai import OpenAI

    client = OpenAI(
        api_key='EMPTY',
        base_url=f"http://127.0.0.1:{server['port']}/v1",
    )
    models = [model.id for model in client.models.list().data]
    print(f'models: {models}')

    query = 'who are you?'
    messages = [{'role': 'user', 'content': query}]

    resp = client.chat.completions.create(model=models[1], messages=messages, max_tokens=512, temperature=0)
    query = messages[0]['content']
    response = resp.choices[0].message.content
    print(f'query: {query}')
    print(f'response: {response}')

    gen = client.chat.completions.create(model=models[2], messages=messages, stream=True, temperature=0)
    print(f'query: {query}\nresponse: ', end='')
    for chunk in gen:
        if chunk is None:
            continue
        print(chunk.choices[0].delta.content, end='', flush=True)
    print()

    assert models == [os.path.basename(qwen2_dir), 'lora1', 'lora2']
    assert resp.model == 'lora1' and resp.choices[0].finish_reason in ('stop', 'length')
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    streamed = capsys.readouterr().out.split('response: ')[-1][:-1]  # without the final print()'s newline
    whole = client.chat.completions.create(model=models[2], messages=messages, temperature=0,
                                           max_tokens=SEED_STREAM_MAX_TOKENS).choices[0].message.content
    assert streamed == whole and 'None' not in streamed


def test_each_adapter_gives_its_own_greedy_answer(server):
    base = os.path.basename(json.loads(_request(server['url'], '/v1/models')[1])['data'][0]['id'])
    answers = [_chat(server['url'], model, 'who are you?', max_tokens=8, temperature=0)['choices'][0]['message']
               ['content'] for model in [base, 'lora1', 'lora2', base]]
    assert len(set(answers[:3])) == 3, answers
    assert answers[3] == answers[0]  # back on the base model: the adapters left nothing behind


# ---- plain HTTP ---------------------------------------------------------------------------------------------------
def test_chat_completion_schema_and_stream(server):
    body = _chat(server['url'], 'lora1', 'hello', max_tokens=6, n=2)
    assert body['object'] == 'chat.completion' and body['model'] == 'lora1' and body['id'].startswith('chatcmpl-')
    assert [c['index'] for c in body['choices']] == [0, 1]
    assert body['choices'][0]['message']['role'] == 'assistant'
    assert body['usage']['completion_tokens'] <= 12 and body['usage']['prompt_tokens'] > 0

    status, raw = _request(server['url'], '/v1/chat/completions', {
        'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hello'}], 'max_tokens': 6, 'stream': True,
        'stream_options': {'include_usage': True}})
    assert status == 200
    events = _sse_events(raw)
    assert {e['object'] for e in events} == {'chat.completion.chunk'} and len({e['id'] for e in events}) == 1
    text = ''.join(e['choices'][0]['delta']['content'] for e in events if e['choices'])
    assert text == body['choices'][0]['message']['content']
    assert events[-2]['choices'][0]['finish_reason'] == body['choices'][0]['finish_reason']
    usage = events[-1]['usage']  # include_usage: a last chunk with no choices carries it
    assert events[-1]['choices'] == [] and usage['prompt_tokens'] == body['usage']['prompt_tokens']
    assert usage['completion_tokens'] * 2 == body['usage']['completion_tokens']  # one choice here, two above


def test_text_completion_uses_no_chat_template(server):
    status, raw = _request(server['url'], '/v1/completions', {'model': 'lora2', 'prompt': 'hello world',
                                                             'max_tokens': 5})
    assert status == 200
    body = json.loads(raw)
    assert body['object'] == 'text_completion' and body['usage']['prompt_tokens'] == 2  # two words, no template
    status, raw = _request(server['url'], '/v1/completions', {'model': 'lora2', 'prompt': 'hello world',
                                                             'max_tokens': 5, 'stream': True})
    events = _sse_events(raw)
    assert ''.join(e['choices'][0]['text'] for e in events) == body['choices'][0]['text']
    assert events[-1]['choices'][0]['finish_reason'] == body['choices'][0]['finish_reason']


def test_a_seed_makes_sampling_repeatable(server):
    answers = [_chat(server['url'], 'lora1', 'hello', max_tokens=8, temperature=1.0, seed=7)['choices'][0]
               ['message']['content'] for _ in range(2)]
    assert answers[0] == answers[1]


@pytest.mark.parametrize('path, body, status, needle', [
    ('/v1/chat/completions', b'{"model": "lora1", "messages": [', 400, 'not valid JSON'),
    ('/v1/chat/completions', {'model': 'nope', 'messages': [{'role': 'user', 'content': 'hi'}]}, 404, 'nope'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': -1},
     400, 'max_tokens'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi ' * 5000}]}, 400,
     'maximum context length'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}],
                              'max_tokens': 4096}, 400, 'maximum context length'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': []}, 400, 'messages'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'robot', 'content': 'hi'}]}, 400, 'role'),
    ('/v1/chat/completions', b'[1, 2]', 400, 'body'),
    ('/v1/completions', {'model': 'lora1'}, 400, 'prompt'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}], 'logprobs': True,
                              'top_logprobs': 21}, 400, 'top_logprobs'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}],
                              'top_logprobs': 2}, 400, 'needs logprobs'),
    ('/v1/completions', {'model': 'lora1', 'prompt': 'hi', 'logprobs': 21}, 400, 'logprobs'),
    ('/v1/nowhere', {'model': 'lora1'}, 404, 'Not Found'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user',
                                                               'content': [{'type': 'text', 'text': 5}]}]},
     400, 'valid string'),
    ('/v1/chat/completions', b'[' * 200_000, 400, 'not valid JSON'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi \ud800'}]}, 400,
     'surrogate'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}], 'seed': 2**70}, 400,
     'seed'),
    ('/v1/chat/completions', {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}], 'temperature': 1,
                              'repetition_penalty': 1e-300}, 400, 'repetition_penalty'),
    ('/v1/completions', {'model': 'lora1', 'prompt': ''}, 400, 'prompt is empty'),
])
def test_bad_requests_get_openai_errors_and_the_server_stays_up(server, path, body, status, needle):
    got, raw = _request(server['url'], path, body)
    assert got == status, raw
    error = json.loads(raw)['error']
    assert needle in error['message'] and set(error) == {'message', 'type', 'code'}
    assert _chat(server['url'], 'lora1', 'still there?', max_tokens=2)['choices']


def test_a_body_sent_as_another_content_type_is_a_415(server):
    body = {'model': 'lora1', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 2}
    status, raw = _request(server['url'], '/v1/chat/completions', body, {'Content-Type': 'text/plain'})
    assert status == 415 and 'application/json' in json.loads(raw)['error']['message']
    for content_type in ('application/json; charset=utf-8', 'application/x-www-form-urlencoded'):  # curl -d's
        assert _request(server['url'], '/v1/chat/completions', body, {'Content-Type': content_type})[0] == 200


def test_a_temperature_near_zero_answers_greedily(server):
    # dividing the logits by 1e-30 would overflow them to inf, which cannot be sampled from
    answers = [_chat(server['url'], 'lora1', 'who are you?', max_tokens=6, temperature=t)['choices'][0]['message']
               ['content'] for t in (0, 1e-30)]
    assert answers[0] == answers[1]


def test_logprobs_with_the_openai_client(server):
    from openai import BadRequestError, OpenAI
    client = OpenAI(api_key='EMPTY', base_url=f"{server['url']}/v1")
    messages = [{'role': 'user', 'content': 'who are you?'}]
    resp = client.chat.completions.create(model='lora1', messages=messages, max_tokens=6, temperature=0,
                                          logprobs=True, top_logprobs=3)
    choice = resp.choices[0]
    content = choice.logprobs.content
    assert len(content) == 6 if choice.finish_reason == 'length' else len(content) <= 6
    assert len(content) in (resp.usage.completion_tokens, resp.usage.completion_tokens - 1)  # - 1: the stop token
    assert b''.join(bytes(entry.bytes) for entry in content).decode('utf-8', 'replace') == choice.message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3 and bytes(entry.bytes)
        assert entry.top_logprobs[0].token == entry.token  # greedy
        assert [t.logprob for t in entry.top_logprobs] == sorted((t.logprob for t in entry.top_logprobs), reverse=True)
    plain = client.chat.completions.create(model='lora1', messages=messages, max_tokens=6, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content
    with pytest.raises(BadRequestError, match='top_logprobs'):
        client.chat.completions.create(model='lora1', messages=messages, max_tokens=2, logprobs=True,
                                       top_logprobs=21)


def test_streamed_logprobs_with_the_openai_client(server):
    from openai import OpenAI
    client = OpenAI(api_key='EMPTY', base_url=f"{server['url']}/v1")
    ask = dict(model='lora1', messages=[{'role': 'user', 'content': 'who are you?'}], max_tokens=8, temperature=0,
               logprobs=True, top_logprobs=2)
    whole = client.chat.completions.create(**ask).choices[0]
    chunks = [chunk.choices[0] for chunk in client.chat.completions.create(**ask, stream=True) if chunk.choices]
    with_entries = [choice.logprobs.content for choice in chunks if choice.logprobs]
    assert sum(map(bool, with_entries)) > 1  # each chunk carries the entries of its own tokens
    streamed = [entry.model_dump() for entries in with_entries for entry in entries]
    assert streamed == [entry.model_dump() for entry in whole.logprobs.content] and streamed
    assert ''.join(choice.delta.content for choice in chunks) == whole.message.content


def test_text_completion_logprobs_with_the_openai_client(server):
    from openai import OpenAI
    client = OpenAI(api_key='EMPTY', base_url=f"{server['url']}/v1")
    ask = dict(model='lora2', prompt='hello world', max_tokens=8, temperature=0, logprobs=2)
    whole = client.completions.create(**ask).choices[0]
    logprobs = whole.logprobs
    n = len(logprobs.tokens)
    assert 0 < n <= 8 and len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset) == n
    text = ask['prompt'] + whole.text  # as OpenAI's, the offsets count from the start of the prompt
    assert logprobs.text_offset[0] == len(ask['prompt']) and logprobs.text_offset == sorted(logprobs.text_offset)
    for token, logprob, top, offset in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs,
                                           logprobs.text_offset):
        assert logprob <= 0 and 1 <= len(top) <= 2 and max(top.values()) == logprob  # greedy: the most likely
        assert '\ufffd' in token or text[offset:].startswith(token)
    # streamed: the chunks' lists, offsets included, add up to the whole answer's
    chunks = [chunk.choices[0] for chunk in client.completions.create(**ask, stream=True)]
    parts = [choice.logprobs for choice in chunks if choice.logprobs]
    assert sum(bool(part.tokens) for part in parts) > 1 and ''.join(choice.text for choice in chunks) == whole.text
    for field in ('tokens', 'token_logprobs', 'top_logprobs', 'text_offset'):
        assert [x for part in parts for x in getattr(part, field)] == getattr(logprobs, field)
    assert client.completions.create(**{**ask, 'logprobs': None}).choices[0].logprobs is None


def test_concurrent_requests_are_batched_and_answer_as_alone(server):
    prompts = [f'question {i}: what can the {w} do?' for i, w in enumerate('model robot team data'.split() * 8)]
    assert len(prompts) == 32  # issue 5: 32 concurrent requests
    ask = lambda prompt: _chat(server['url'], 'lora1', prompt, max_tokens=4, temperature=0)['choices'][0]['message']
    alone = [ask(p) for p in prompts]
    together = [None] * len(prompts)

    def run(i):
        together[i] = ask(prompts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    time.sleep(1.5)  # the throughput line comes every --log_interval 1 seconds
    per_batch = [float(x) for x in re.findall(r'([\d.]+) requests per batch', open(server['log']).read())]
    assert per_batch and max(per_batch) > 1, per_batch


def test_a_client_that_disconnects_stops_its_generation(server):
    conn = http.client.HTTPConnection('127.0.0.1', server['port'], timeout=30)
    base = json.loads(_request(server['url'], '/v1/models')[1])['data'][0]['id']
    conn.request('POST', '/v1/chat/completions', json.dumps({
        'model': base, 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 4000, 'stream': True}))
    response = conn.getresponse()
    assert response.status == 200 and b'data: ' in response.fp.readline() + response.fp.readline()
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.time() + 20
    while time.time() < deadline and 'client disconnected' not in open(server['log']).read():
        time.sleep(0.2)
    stopped = re.findall(r'stopped its generation after (\d+) tokens', open(server['log']).read())
    assert stopped and int(stopped[-1]) < 4000


# ---- API key --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def keyed_server(qwen2_dir):
    """create_app in this process, with an API key and a served name of its own."""
    from swift.infer import PtEngine
    from swift.infer.server import create_app
    from swift.model import get_model_tokenizer
    from swift.template import get_template
    model, tokenizer = get_model_tokenizer(qwen2_dir)
    engine = PtEngine(model, get_template('qwen', tokenizer), max_batch_size=4)
    with serving(create_app(engine, 'my-model', [], api_key='sk-test')) as url:
        yield url


def test_api_key_is_required_when_set(keyed_server):
    from openai import AuthenticationError, OpenAI
    assert _request(keyed_server, '/health')[0] == 200
    for headers in [{}, {'Authorization': 'Bearer wrong'}, {'Authorization': 'sk-test'}]:
        status, raw = _request(keyed_server, '/v1/models', headers=headers)
        assert status == 401 and json.loads(raw)['error']['code'] == 'invalid_api_key'
    with pytest.raises(AuthenticationError):
        OpenAI(api_key='EMPTY', base_url=f'{keyed_server}/v1').models.list()
    client = OpenAI(api_key='sk-test', base_url=f'{keyed_server}/v1')
    assert [m.id for m in client.models.list().data] == ['my-model']
    resp = client.chat.completions.create(model='my-model', messages=[{'role': 'user', 'content': 'hi'}],
                                          max_tokens=3, temperature=0)
    assert resp.usage.completion_tokens <= 3


# ---- a reward model (issue 12) ------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def reward_server(qwen2_dir, tmp_path_factory):
    """``swift deploy`` of a reward model: a classification head, ``--task_type seq_cls``."""
    root = tmp_path_factory.mktemp('reward')
    model_dir = make_reward_model(qwen2_dir, str(root / 'rm'))
    port = free_port()
    argv = ['deploy', '--model', model_dir, '--task_type', 'seq_cls', '--num_labels', '1', '--served_model_name',
            'rm', '--infer_backend', 'pt', '--host', '127.0.0.1', '--port', str(port)]
    with running_swift(argv, f'http://127.0.0.1:{port}/health', str(root / 'server.log')):
        yield {'url': f'http://127.0.0.1:{port}', 'model_dir': model_dir}


def test_a_reward_model_answers_a_chat_with_its_score(reward_server):
    from swift.infer import PtEngine
    from swift.protocol import InferRequest
    conversations = [[{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': answer}]
                     for answer in ('hello there', 'go away')]
    engine = PtEngine(reward_server['model_dir'])
    for conversation in conversations:
        status, raw = _request(reward_server['url'], '/v1/chat/completions', {'model': 'rm', 'messages': conversation})
        assert status == 200, raw
        body = json.loads(raw)
        # as ms-swift serves a reward model: the score of the whole conversation is the answer's content
        assert body['choices'][0]['message']['content'] == f'{engine.score(InferRequest(messages=conversation)):.6g}'
        assert body['model'] == 'rm' and body['usage']['completion_tokens'] == 0


@pytest.mark.parametrize('path, fields', [
    ('/v1/chat/completions', {'stream': True}),
    ('/v1/chat/completions', {'n': 2}),
    ('/v1/chat/completions', {'logprobs': True}),
    ('/v1/completions', {'prompt': 'hello'}),
])
def test_a_reward_model_refuses_what_it_cannot_answer_with_a_400_that_says_why(reward_server, path, fields):
    body = {'model': 'rm', **({} if 'prompt' in fields else {'messages': [{'role': 'user', 'content': 'hi'}]}),
            **fields}
    status, raw = _request(reward_server['url'], path, body)
    error = json.loads(raw)['error']
    assert status == 400 and set(error) == {'message', 'type', 'code'}, raw
    assert 'rm is a reward model' in error['message'] and 'POST /v1/chat/completions' in error['message']
