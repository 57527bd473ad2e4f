"""``--infer_backend vllm``: VllmEngine on vLLM's CPU build, checked against PtEngine on the same tiny model.

Both compute in float32, so greedy answers agree token for token, with the base model and with each LoRA adapter.
"""
import json
import os
import shutil
import threading

import psutil
import pytest

from swift.arguments import InferArguments
from swift.infer import PtEngine
from swift.pipelines.common import load_model_and_template
from swift.pipelines.infer import batch_infer, build_engine, request_config
from swift.protocol import InferRequest, RequestConfig
from swift.utils import SwiftError
from tests.conftest import run_swift
from tests.deploy.support import free_port, running_swift

PROMPTS = ['who are you?', 'tell me a long story about a robot, a team and their data, please', 'hi']
MAX_MODEL_LEN = 256


def _requests(*prompts: str) -> list[InferRequest]:
    return [InferRequest(messages=[{'role': 'user', 'content': p}]) for p in prompts]


def _answers(engine, config: RequestConfig, adapter: str | None = None) -> list[str]:
    # An answer cut by max_tokens inside a multi-byte character: transformers decodes the partial bytes to U+FFFD,
    # vLLM's incremental detokenizer holds them back. The random tiny models write such bytes often.
    return [r.choices[0].message.content.rstrip('\ufffd')
            for r in engine.infer(_requests(*PROMPTS), config, adapter=adapter)]


@pytest.fixture(scope='module')
def engine(vllm_model_dir, vllm_adapters):
    """Built as ms-swift's examples/infer/demo.py builds one (seed 002 points there); the CLI tests below build
    theirs from the flags."""
    from swift.llm import VllmEngine
    with VllmEngine(vllm_model_dir, adapters=vllm_adapters, max_model_len=MAX_MODEL_LEN, enforce_eager=True) as engine:
        yield engine


@pytest.fixture(scope='module')
def pt_engine(vllm_model_dir, vllm_adapters):
    model, _, template = load_model_and_template(InferArguments(model=vllm_model_dir))
    engine = PtEngine(model, template, max_batch_size=4)
    for name, path in vllm_adapters.items():
        engine.add_adapter(path, name)
    return engine


GREEDY = RequestConfig(max_tokens=12, temperature=0)


@pytest.mark.parametrize('adapter', [None, 'lora1', 'lora2'])
def test_greedy_answers_match_transformers(engine, pt_engine, adapter):
    answers = _answers(engine, GREEDY, adapter)
    assert answers == _answers(pt_engine, GREEDY, adapter)
    if adapter is not None:  # the adapter was applied: its answers are not the base model's
        assert answers != _answers(engine, GREEDY)


def test_logprobs_match_transformers(engine, pt_engine):
    config = RequestConfig(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    ours, theirs = engine.infer(_requests(PROMPTS[0]), config)[0], pt_engine.infer(_requests(PROMPTS[0]), config)[0]
    entries, expected = ours.choices[0].logprobs.content, theirs.choices[0].logprobs.content
    assert [e.token for e in entries] == [e.token for e in expected]
    for entry, want in zip(entries, expected):
        assert entry.logprob == pytest.approx(want.logprob, abs=1e-3)
        assert [t.token for t in entry.top_logprobs] == [t.token for t in want.top_logprobs]
    assert ours.usage == theirs.usage


def test_stream_adds_up_to_the_whole_answer(engine):
    config = RequestConfig(max_tokens=10, temperature=0.9, seed=3, n=2)
    whole = engine.infer(_requests(PROMPTS[1]), config)[0]
    texts, finishes = {0: '', 1: ''}, {}
    for chunk, in engine.infer(_requests(PROMPTS[1]), RequestConfig(**{**vars(config), 'stream': True})):
        choice = chunk.choices[0]
        texts[choice.index] += choice.delta.content
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert finishes == {0: 'length', 1: 'length'} and whole.usage.completion_tokens == 20


def test_ms_swift_demo_stream_and_metrics(engine):
    from swift.plugin import InferStats
    metric = InferStats()
    texts = [''] * len(PROMPTS)
    for resp_list in engine.infer(_requests(*PROMPTS), RequestConfig(max_tokens=12, temperature=0, stream=True),
                                  metrics=[metric]):
        for i, resp in enumerate(resp_list):
            texts[i] += resp.choices[0].delta.content if resp is not None else ''
    assert [text.rstrip('\ufffd') for text in texts] == _answers(engine, GREEDY)
    assert metric.compute()['num_generated_tokens'] == 12 * len(PROMPTS)


def test_an_adapter_added_later_answers_as_at_start_up(engine, vllm_adapters):
    """ms-swift's adapter_request: a LoRA named per request, loaded by vLLM on first use."""
    from swift.llm import AdapterRequest
    request = AdapterRequest('lora1-again', vllm_adapters['lora1'])
    answers = [r.choices[0].message.content.rstrip('\ufffd')
               for r in engine.infer(_requests(*PROMPTS), GREEDY, adapter_request=request)]
    assert answers == _answers(engine, GREEDY, 'lora1') and 'lora1-again' in engine.adapter_names


def test_stop_words_and_length(engine, pt_engine):
    answer = _answers(engine, RequestConfig(max_tokens=12, temperature=0), 'lora1')[1]
    stop = answer[len(answer) // 2:][:2]  # a stop word from the middle of the answer
    config = RequestConfig(max_tokens=12, temperature=0, stop=[stop])
    cut = engine.infer(_requests(PROMPTS[1]), config, adapter='lora1')[0].choices[0]
    assert cut.message.content == answer[:answer.index(stop)] and cut.finish_reason == 'stop'
    assert cut.message.content == pt_engine.infer(_requests(PROMPTS[1]), config,
                                                  adapter='lora1')[0].choices[0].message.content


def test_context_longer_than_the_model_is_one_error(engine):
    with pytest.raises(SwiftError, match=f'maximum context length is {MAX_MODEL_LEN} tokens'):
        engine.infer(_requests('hi'), RequestConfig(max_tokens=MAX_MODEL_LEN))
    with pytest.raises(SwiftError, match="unknown adapter 'lora3'"):
        engine.infer(_requests('hi'), GREEDY, adapter='lora3')


def test_a_cancelled_request_stops_generating(engine):
    prompt, config = engine.encode(_requests('hi')[0]), RequestConfig(max_tokens=200, temperature=0)
    assert engine.generate([prompt], config)[0].usage.completion_tokens == 200  # left alone, it runs to the limit
    started = threading.Event()
    response = engine.generate([prompt], config, on_text=lambda *_: started.set(),
                               cancelled=lambda _: started.is_set())[0]
    assert 0 < response.usage.completion_tokens < 200
    gone = engine.generate([prompt], config, cancelled=lambda _: True)[0]  # left before its first token
    assert gone.usage.completion_tokens < 200


def test_an_empty_stop_word_stops_nothing(engine, pt_engine):
    config = RequestConfig(max_tokens=12, temperature=0, stop=[''])
    assert engine.infer(_requests('hi'), config)[0].choices == pt_engine.infer(_requests('hi'), config)[0].choices


def test_batch_inference_over_a_dataset_in_one_go(engine, vllm_model_dir, tmp_path):
    data = tmp_path / 'val.jsonl'
    data.write_text(''.join(json.dumps({'messages': [{'role': 'user', 'content': p}, {'role': 'assistant',
                                                                                   'content': 'x'}]}) + '\n'
                            for p in PROMPTS))
    args = InferArguments(model=vllm_model_dir, infer_backend='vllm', val_dataset=[str(data)], temperature=0,
                          max_new_tokens=12, result_path=str(tmp_path / 'out.jsonl'))
    results = batch_infer(engine, args, request_config(args))
    assert [r['response'].rstrip('\ufffd') for r in results] == _answers(engine, GREEDY)
    assert len((tmp_path / 'out.jsonl').read_text().splitlines()) == len(PROMPTS)


def test_a_dora_adapter_is_refused_before_vllm_starts(vllm_model_dir, tmp_path):
    os.makedirs(tmp_path / 'dora')
    with open(tmp_path / 'dora' / 'adapter_config.json', 'w') as f:
        json.dump({'peft_type': 'LORA', 'use_dora': True, 'r': 8}, f)
    args = InferArguments(model=vllm_model_dir, adapters=[str(tmp_path / 'dora')], infer_backend='vllm')
    with pytest.raises(SwiftError, match='is DoRA; vLLM serves plain LoRA: merge it first'):
        build_engine(args)


def test_settings_vllm_refuses_are_one_line(vllm_model_dir):
    args = InferArguments(model=vllm_model_dir, infer_backend='vllm', vllm_max_model_len=65536)
    with pytest.raises(SwiftError, match=r'^vLLM refused the settings: User-specified max_model_len \(65536\)'):
        build_engine(args)


def test_seed_deploy_with_vllm_serves_two_adapters(vllm_model_dir, vllm_adapters, engine, tmp_path):
    """Seed 002's deploy command with --infer_backend vllm, and its openai client, under concurrent requests."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI
    port = free_port()
    argv = ['deploy', '--model', vllm_model_dir, '--adapters', *[f'{n}={p}' for n, p in vllm_adapters.items()],
            '--infer_backend', 'vllm', '--temperature', '0', '--max_new_tokens', '12', '--host', '127.0.0.1',
            '--port', str(port), '--vllm_enforce_eager', 'true', '--vllm_max_model_len', str(MAX_MODEL_LEN),
            '--served_model_name', 'tiny']
    with running_swift(argv, f'http://127.0.0.1:{port}/health', str(tmp_path / 'server.log'), timeout=600) as server:
        vllm_processes = psutil.Process(server.pid).children(recursive=True)
        client = OpenAI(api_key='EMPTY', base_url=f'http://127.0.0.1:{port}/v1')
        models = [model.id for model in client.models.list().data]
        assert models == ['tiny', 'lora1', 'lora2']
        messages = [{'role': 'user', 'content': 'who are you?'}]
        alone = client.chat.completions.create(model='lora1', messages=messages, max_tokens=12, temperature=0)
        assert alone.choices[0].message.content == _answers(engine, GREEDY, 'lora1')[0]
        streamed = ''.join(chunk.choices[0].delta.content or '' for chunk in client.chat.completions.create(
            model='lora2', messages=messages, stream=True, temperature=0) if chunk.choices)
        assert streamed == _answers(engine, GREEDY, 'lora2')[0]
        with ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda _: client.chat.completions.create(
                model='lora1', messages=messages, max_tokens=12, temperature=0).choices[0].message.content,
                range(16)))
        assert together == [alone.choices[0].message.content] * 16
    _, alive = psutil.wait_procs(vllm_processes, timeout=15)
    assert vllm_processes and not alive  # vLLM's engine processes end with the server


def test_seed_infer_command_merges_and_streams_with_vllm(vllm_model_dir, vllm_adapters, engine, tmp_path):
    """Seed 003's command: merge the checkpoint, then chat with vLLM; the base and template come from args.json."""
    ckpt = str(tmp_path / 'checkpoint-1')
    shutil.copytree(vllm_adapters['lora1'], ckpt)
    with open(os.path.join(ckpt, 'args.json'), 'w') as f:
        json.dump({'model': vllm_model_dir, 'template': 'qwen'}, f)
    result = run_swift('infer', '--adapters', ckpt, '--stream', 'true', '--merge_lora', 'true', '--infer_backend',
                       'vllm', '--vllm_max_model_len', '8192', '--temperature', '0', '--max_new_tokens', '2048',
                       input='who are you?\nexit\n')
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(os.path.join(f'{ckpt}-merged', 'model.safetensors'))
    assert _answers(engine, GREEDY, 'lora1')[0] in result.stdout
