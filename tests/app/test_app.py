"""``swift app`` end to end: the real command in a subprocess, driven as a browser would through ``gradio_client``.

The model is the tiny Qwen2-style one with a random LoRA, so that its greedy answers depend on what it is told: the
answers the page shows are checked against the same engine answering the whole conversation directly.
"""
import copy
import dataclasses
import inspect

import pytest

from swift.arguments import AppArguments, InferArguments, parse_args
from swift.cli.main import cli_main
from swift.infer import PtEngine
from swift.pipelines.app import chat_turn
from swift.pipelines.infer import build_engine
from swift.protocol import InferRequest, RequestConfig
from swift.utils import SwiftError

from ..browser import browser_page, screenshot  # noqa: F401  (fixture)
from ..deploy.support import free_port, make_adapter, running_swift

SYSTEM = 'You are a tiny test model.'
MAX_NEW_TOKENS = 8
GREEDY = RequestConfig(max_tokens=MAX_NEW_TOKENS, temperature=0)


@pytest.fixture(scope='module')
def adapter(qwen2_dir, tmp_path_factory) -> str:
    return make_adapter(qwen2_dir, str(tmp_path_factory.mktemp('app') / 'lora'), seed=0)


@pytest.fixture(scope='module')
def app_url(qwen2_dir, adapter, tmp_path_factory):
    port = free_port()
    argv = ['app', '--model', qwen2_dir, '--adapters', adapter, '--temperature', '0', '--max_new_tokens',
            str(MAX_NEW_TOKENS), '--server_port', str(port), '--studio_title', 'Tiny chat', '--lang', 'en']
    url = f'http://127.0.0.1:{port}/'
    with running_swift(argv, url, str(tmp_path_factory.mktemp('app') / 'app.log'),
                       env={'GRADIO_ANALYTICS_ENABLED': 'False'}):
        yield url


@pytest.fixture(scope='module')
def engine(qwen2_dir, adapter) -> PtEngine:
    """The model the app serves, in this process."""
    return build_engine(parse_args(InferArguments, ['--model', qwen2_dir, '--adapters', adapter]))


@pytest.fixture(scope='module')
def answer(engine):
    """The greedy answer of the model the app serves, asked directly."""
    return lambda messages: engine.infer([InferRequest(messages)], GREEDY)[0].choices[0].message.content


def _texts(history: list[dict]) -> list[tuple[str, str]]:
    return [(m['role'], ''.join(part['text'] for part in m['content'])) for m in history]


def _shown(text: str) -> str:
    """A message as gradio's chat shows it, and so as the page sends it back: the leading whitespace cleaned."""
    return inspect.cleandoc(text)


def test_the_chat_streams_answers_and_keeps_the_history(app_url, answer):
    from gradio_client import Client
    client = Client(app_url, verbose=False)
    q1, q2 = 'who are you?', 'and what can you do?'
    job = client.submit(q1, [], SYSTEM, api_name='/chat')
    box, history = job.result()
    system = [{'role': 'system', 'content': SYSTEM}]
    a1 = _shown(answer([*system, {'role': 'user', 'content': q1}]))
    assert a1 != _shown(answer([{'role': 'user', 'content': q1}])), 'the system prompt must change the answer'
    assert box == '' and _texts(history) == [('user', q1), ('assistant', a1)] and a1
    grown = [_texts(outputs[1])[-1][1] for outputs in job.outputs()]
    assert len(grown) > 2 and all(a1.startswith(text) for text in grown)  # the answer grew token by token

    _, history = client.predict(q2, history, SYSTEM, api_name='/chat')
    a2 = _shown(answer([*system, {'role': 'user', 'content': q1}, {'role': 'assistant', 'content': a1},
                        {'role': 'user', 'content': q2}]))
    assert a2 != _shown(answer([*system, {'role': 'user', 'content': q2}])), 'the history must change the answer'
    assert _texts(history) == [('user', q1), ('assistant', a1), ('user', q2), ('assistant', a2)]
    assert client.predict(api_name='/clear') == ('', [])


def test_without_streaming_the_answer_comes_whole(engine, answer):
    messages = [{'role': 'user', 'content': 'who are you?'}]
    turn = chat_turn(engine, GREEDY, 'who are you?', [], '', RuntimeError)
    shown = [copy.deepcopy(history) for _, history in turn]  # the page shows each as it comes
    assert [len(history) for history in shown] == [2, 2]  # the question at once, then the whole answer
    assert shown[0][1]['content'] == '' and shown[1][1]['content'] == answer(messages)


def test_a_failing_answer_is_reported_on_the_page(engine):
    class PageError(Exception):
        pass

    streamed = dataclasses.replace(GREEDY, stream=True)
    with pytest.raises(PageError, match='maximum context length'):
        list(chat_turn(engine, streamed, 'hi ' * 5000, [], '', PageError))


def test_app_flags_follow_ms_swift():
    args = parse_args(AppArguments, ['--model', 'm'])
    assert (args.server_name, args.server_port, args.share, args.lang, args.stream) == ('127.0.0.1', 7860, False,
                                                                                        'en', True)
    with pytest.raises(SwiftError, match='--server_port'):
        parse_args(AppArguments, ['--model', 'm', '--server_port', '70000'])


def test_a_bad_flag_is_one_line_and_exit_2(qwen2_dir, capsys):
    # cli_main is what the swift command runs, and its return value the exit status (tests/cli runs it as a process)
    assert cli_main(['app', '--model', qwen2_dir, '--lang', 'fr']) == 2
    assert capsys.readouterr().err == "swift app: error: --lang: invalid choice: 'fr' (choose from 'en', 'zh')\n"


def test_in_a_browser_a_typed_question_gets_the_streamed_answer(app_url, answer, browser_page, tmp_path):
    """The page in headless chromium: type a question, press Enter, and watch the answer grow into the model's."""
    question = 'who are you?'
    expected = _rendered(answer([{'role': 'user', 'content': question}]))
    page = browser_page
    page.goto(app_url)
    page.get_by_label('Your message').fill(question)
    page.get_by_label('Your message').press('Enter')
    bot = page.get_by_test_id('bot').last
    seen = set()
    while (text := _rendered(bot.inner_text())) != expected:  # the answer as the page shows it, growing
        seen.add(text)
        assert len(seen) < 500 and all(expected.startswith(t) for t in seen), (text, expected)
    assert page.get_by_test_id('user').last.inner_text().strip() == question
    screenshot(page, tmp_path, 'app')


def _rendered(text: str) -> str:
    """Text as a browser renders it: runs of whitespace collapse to one space."""
    return ' '.join(text.split())
