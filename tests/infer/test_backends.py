"""``--infer_backend sglang`` and ``lmdeploy``.

Neither runs without a CUDA GPU, so this machine checks: the one-line error when the package or the GPU is missing,
the mapping of a request's settings onto each backend's parameters, and ``ChoiceStreamEngine`` (what both engines
share: stop words, held-back text, ``n`` choices, cancellation, usage) on a scripted backend. The real engines are
checked against PtEngine's greedy answers where a CUDA GPU and the package are there.
"""
import asyncio
import importlib.util
from typing import AsyncIterator

import pytest
import torch

from swift.arguments import InferArguments
from swift.infer import PtEngine
from swift.infer.choice_engine import ChoiceRequest, ChoiceStreamEngine, Delta
from swift.infer.arguments import LmdeployArguments, SglangArguments
from swift.infer.lmdeploy_engine import backend_config_kwargs, generation_kwargs
from swift.infer.sglang_engine import engine_kwargs, sampling_params
from swift.pipelines.common import load_folder_and_template, load_model_and_template
from swift.pipelines.infer import build_engine
from swift.protocol import ChatCompletionTokenLogprob, InferRequest, RequestConfig
from swift.utils import SwiftError
from tests.conftest import run_swift

PROMPTS = ['who are you?', 'tell me a long story about a robot, a team and their data, please', 'hi']


def _requests(*prompts: str) -> list[InferRequest]:
    return [InferRequest(messages=[{'role': 'user', 'content': p}]) for p in prompts]


# ---- the one-line error without the package or a GPU ------------------------------------------------------------
@pytest.mark.parametrize('backend, name', [('sglang', 'SGLang'), ('lmdeploy', 'LMDeploy')])
def test_backend_unavailable_is_one_line(qwen2_dir, backend, name):
    if importlib.util.find_spec(backend) is not None and torch.cuda.is_available():
        pytest.skip(f'{backend} and a CUDA GPU are here: the backend runs')
    result = run_swift('infer', '--model', qwen2_dir, '--infer_backend', backend, input='exit\n')
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f'--infer_backend {backend}: {name}' in lines[0], result.stderr[-2000:]


def test_backend_flags_are_checked():
    with pytest.raises(SwiftError, match='--sglang_mem_fraction_static'):
        InferArguments(model='m', sglang_mem_fraction_static=1.5)
    with pytest.raises(SwiftError, match='--lmdeploy_quant_policy'):
        InferArguments(model='m', lmdeploy_quant_policy=3)


# ---- request settings onto each backend's parameters -------------------------------------------------------------
def test_sglang_sampling_params():
    greedy = sampling_params(RequestConfig(max_tokens=5, stop=['x']), 5, [7, 9])
    assert greedy == {'max_new_tokens': 5, 'temperature': 0.0, 'top_p': 1.0, 'top_k': -1, 'repetition_penalty': 1.0,
                      'stop_token_ids': [7, 9]}  # stop words are ChoiceStreamEngine's
    sampled = sampling_params(RequestConfig(temperature=0.7, top_p=0.9, top_k=5, repetition_penalty=1.1, seed=3),
                              8, [7], choice=2)
    assert sampled == {'max_new_tokens': 8, 'temperature': 0.7, 'top_p': 0.9, 'top_k': 5, 'repetition_penalty': 1.1,
                       'stop_token_ids': [7], 'sampling_seed': 5}


def test_sglang_engine_kwargs():
    plain = engine_kwargs('/model', SglangArguments(sglang_tp_size=2, sglang_context_length=512), {},
                          dtype='bfloat16', seed=3)
    assert plain['tp_size'] == 2 and plain['context_length'] == 512 and 'lora_paths' not in plain
    assert plain['dtype'] == 'bfloat16' and plain['random_seed'] == 3 and plain['trust_remote_code'] is False
    assert plain['incremental_streaming_output'] is True  # the stream is read as deltas
    lora = engine_kwargs('/model', SglangArguments(), {'a': '/a', 'default': '/d'})
    assert lora['lora_paths'] == ['a=/a', 'default=/d'] and lora['enable_lora'] and lora['max_loras_per_batch'] == 3


def test_lmdeploy_generation_kwargs():
    greedy = generation_kwargs(RequestConfig(), 6, [7])
    assert greedy == {'max_new_tokens': 6, 'do_sample': False, 'stop_token_ids': [7], 'repetition_penalty': 1.0}
    sampled = generation_kwargs(RequestConfig(temperature=0.5, seed=1, logprobs=True, top_logprobs=0), 6, [7],
                                choice=1)
    assert sampled['do_sample'] and sampled['temperature'] == 0.5 and sampled['top_k'] == 0
    assert sampled['top_p'] == 1.0 and sampled['random_seed'] == 2 and sampled['logprobs'] == 1
    assert 'stop_words' not in sampled  # LMDeploy would stop on every token containing one


def test_lmdeploy_backend_config_kwargs():
    assert backend_config_kwargs(LmdeployArguments(lmdeploy_tp=2, lmdeploy_session_len=256)) == {
        'tp': 2, 'session_len': 256, 'cache_max_entry_count': 0.8, 'quant_policy': 0}


# ---- ChoiceStreamEngine on a scripted backend ---------------------------------------------------------------------
class _Scripted(ChoiceStreamEngine):
    """Streams ``pieces`` (one token each) for every request, then finishes with 'length', unless aborted."""

    def __init__(self, template, pieces: list[str]):
        super().__init__(template, 'scripted', 'test-scripted')
        self.pieces = pieces
        self.aborted: set[str] = set()
        self.seen: list[ChoiceRequest] = []

    adapter_names = []
    max_model_len = 1000

    async def _open(self, request: ChoiceRequest, config: RequestConfig) -> AsyncIterator[Delta]:
        self.seen.append(request)
        for count, piece in enumerate(self.pieces, 1):
            await asyncio.sleep(0)  # a real backend waits for each step, letting the cancel watcher run
            if request.id in self.aborted:
                yield Delta('', count - 1, [] if config.logprobs else None, 'abort')
                return
            entries = [ChatCompletionTokenLogprob(piece, -0.5, [])] if config.logprobs else None
            yield Delta(f'{piece}{request.choice}' if config.n > 1 else piece, count, entries,
                        'length' if count == len(self.pieces) else None)

    async def _abort(self, request: ChoiceRequest) -> None:
        self.aborted.add(request.id)

    def _shutdown(self) -> None:
        pass


@pytest.fixture(scope='module')
def template(qwen2_dir):
    return load_folder_and_template(InferArguments(model=qwen2_dir))[1]


def _generate(engine, config, cancelled=None):
    streamed = []
    on_text = lambda prompt, choice, text, entries: streamed.append((prompt, choice, text, entries))  # noqa: E731
    return engine.generate([[1, 2, 3]], config, on_text=on_text, cancelled=cancelled)[0], streamed


def test_stop_word_cuts_and_is_never_streamed(template):
    with _Scripted(template, ['Hel', 'lo w', 'orld', '!']) as engine:
        response, streamed = _generate(engine, RequestConfig(stop=['o world'], logprobs=True))
        choice = response.choices[0]
        assert choice.message.content == 'Hell' and choice.finish_reason == 'stop'
        assert ''.join(text for *_, text, _ in streamed) == 'Hell'
        # the 'o' that might start the stop word was held back until the stop word came
        assert [text for *_, text, _ in streamed if text] == ['Hel', 'l']
        assert engine.aborted  # the backend was told to stop
        assert [e.token for e in choice.logprobs.content] == ['Hel', 'lo w', 'orld']
        assert [e for *_, entries in streamed for e in entries] == choice.logprobs.content
        assert response.usage.completion_tokens == 3


def test_n_choices_are_requests_with_their_own_seed(template):
    with _Scripted(template, ['a', 'b']) as engine:
        response, streamed = _generate(engine, RequestConfig(n=2, seed=7))
        assert [c.message.content for c in response.choices] == ['a0b0', 'a1b1']
        assert [c.finish_reason for c in response.choices] == ['length', 'length']
        assert sorted(r.choice for r in engine.seen) == [0, 1]
        assert response.usage.completion_tokens == 4
        for index in (0, 1):
            assert ''.join(t for _, c, t, _ in streamed if c == index) == response.choices[index].message.content


def test_cancelled_request_is_aborted(template):
    with _Scripted(template, ['x'] * 10_000) as engine:
        response, _ = _generate(engine, RequestConfig(max_tokens=500), cancelled=lambda prompt: True)
        assert engine.aborted and response.choices[0].finish_reason == 'stop'
        assert len(response.choices[0].message.content) < 10_000


def test_context_is_checked_before_any_request(template):
    with _Scripted(template, ['a']) as engine:
        with pytest.raises(SwiftError, match='maximum context length'):
            engine.generate([[1] * 999], RequestConfig(max_tokens=5))
        assert not engine.seen


# ---- the real engines, against PtEngine ---------------------------------------------------------------------------
def _runs(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None and torch.cuda.is_available()


# Head size 128, which the GPU attention kernels (TurboMind, FlashInfer, FA3) take; the tiny models' 16 is too small.
HIDDEN_SIZE = 512


@pytest.fixture(scope='module')
def gpu_model_dir(tmp_path_factory) -> str:
    from swift.utils.tiny_models import build_tiny_model
    return build_tiny_model(str(tmp_path_factory.mktemp('gpu-qwen2')), 'qwen2', hidden_size=HIDDEN_SIZE)


@pytest.fixture(scope='module')
def pt_engine(gpu_model_dir):
    model, _, template = load_model_and_template(InferArguments(model=gpu_model_dir, torch_dtype='float32'))
    return PtEngine(model, template, max_batch_size=4)


GREEDY = RequestConfig(max_tokens=12, temperature=0)


def _answers(engine, config: RequestConfig) -> list[str]:
    # a cut inside a multi-byte character: transformers decodes U+FFFD, the backends hold the bytes back
    return [r.choices[0].message.content.rstrip('\ufffd') for r in engine.infer(_requests(*PROMPTS), config)]


@pytest.mark.skipif(not _runs('sglang'), reason='needs a CUDA GPU and sglang')
def test_sglang_greedy_answers_match_transformers(gpu_model_dir, pt_engine):
    args = InferArguments(model=gpu_model_dir, infer_backend='sglang', torch_dtype='float32',
                          sglang_context_length=256, sglang_mem_fraction_static=0.3)
    with build_engine(args) as engine:
        assert _answers(engine, GREEDY) == _answers(pt_engine, GREEDY)


@pytest.mark.skipif(not _runs('lmdeploy'), reason='needs a CUDA GPU and lmdeploy')
def test_lmdeploy_greedy_answers_match_transformers(gpu_model_dir, pt_engine):
    args = InferArguments(model=gpu_model_dir, infer_backend='lmdeploy', lmdeploy_session_len=256,
                          lmdeploy_cache_max_entry_count=0.3)
    with build_engine(args) as engine:
        assert _answers(engine, GREEDY) == _answers(pt_engine, GREEDY)
