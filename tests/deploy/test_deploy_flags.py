"""ms-swift's deploy flags (issue 13): --max_logprobs, --verbose, --owned_by, on the app swift deploy serves."""
import logging
import time

import pytest
from fastapi.testclient import TestClient

from swift.arguments import DeployArguments, parse_args
from swift.utils import SwiftError


@pytest.fixture(scope='module')
def engine(qwen2_dir):
    from swift.infer import PtEngine
    from swift.model import get_model_tokenizer
    from swift.template import get_template
    model, tokenizer = get_model_tokenizer(qwen2_dir)
    return PtEngine(model, get_template('qwen', tokenizer), max_batch_size=2)


def _client(engine, **flags):
    from swift.infer.server import create_app
    from swift.pipelines.deploy import add_deploy_flags
    app = create_app(engine, 'm', [])
    add_deploy_flags(app, **flags)
    return TestClient(app)


CHAT = {'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 2, 'temperature': 0}


def test_max_logprobs_and_owned_by(engine):
    with _client(engine, max_logprobs=2, owned_by='me') as client:
        assert [m['owned_by'] for m in client.get('/v1/models').json()['data']] == ['me']
        ok = client.post('/v1/chat/completions', json={**CHAT, 'logprobs': True, 'top_logprobs': 2})
        assert ok.status_code == 200 and len(ok.json()['choices'][0]['logprobs']['content'][0]['top_logprobs']) == 2
        refused = client.post('/v1/chat/completions', json={**CHAT, 'logprobs': True, 'top_logprobs': 3})
        assert refused.status_code == 400 and 'max_logprobs' in refused.json()['error']['message']
        text = client.post('/v1/completions', json={'model': 'm', 'prompt': 'hi', 'max_tokens': 2, 'logprobs': 3})
        assert text.status_code == 400
        # a body too deep for json stays the server's own 400, not an error of the check
        deep = client.post('/v1/chat/completions', content=b'[' * 100000, headers={'content-type': 'application/json'})
        assert deep.status_code == 400
    with _client(engine) as client:  # defaults: 20, 'swift'
        assert client.get('/v1/models').json()['data'][0]['owned_by'] == 'swift'
        assert client.post('/v1/chat/completions', json={**CHAT, 'logprobs': True, 'top_logprobs': 3}).status_code == 200


def test_verbose_logs_requests_and_responses(engine, caplog):
    caplog.set_level(logging.INFO)
    with _client(engine, verbose=True) as client:
        reply_id = client.post('/v1/chat/completions', json=CHAT).json()['id']
    deadline = time.time() + 5  # the app runs in the test client's thread: its last line may come a moment later
    while 'response /v1/chat/completions' not in caplog.text and time.time() < deadline:
        time.sleep(0.05)
    logged = caplog.text
    assert 'request /v1/chat/completions' in logged and '"hi"' in logged
    assert 'response /v1/chat/completions' in logged and reply_id in logged
    caplog.clear()
    with _client(engine, verbose=False) as client:
        client.post('/v1/chat/completions', json=CHAT)
    assert 'request /v1/chat/completions' not in caplog.text


def test_deploy_flag_values():
    args = parse_args(DeployArguments, ['--model', 'm'])
    assert (args.owned_by, args.verbose, args.max_logprobs) == ('swift', True, 20)
    with pytest.raises(SwiftError, match='--max_logprobs'):
        parse_args(DeployArguments, ['--model', 'm', '--max_logprobs', '-1'])
