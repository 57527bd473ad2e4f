"""The seeds' Python API (seed 002): train with sft_main, then answer with Swift.from_pretrained and PtEngine."""
import threading

import pytest

from swift.llm import (BaseArguments, InferRequest, PtEngine, RequestConfig, TrainArguments, get_model_tokenizer,
                       get_template, safe_snapshot_download, sft_main)
from swift.infer.base import STREAM_THREAD
from swift.tuners import Swift
from swift.utils import SwiftError


@pytest.fixture(scope='module')
def trained(qwen2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('api')
    result = sft_main(TrainArguments(
        model=qwen2_dir, train_type='lora', dataset=['swift/self-cognition#16'], torch_dtype='bfloat16',
        model_name=['小黄', 'Xiao Huang'], model_author=['魔搭', 'ModelScope'], max_steps=2, save_steps=2,
        output_dir=str(out), system='You are a careful assistant.'))
    return result


def test_sft_main_returns_the_last_checkpoint(trained):
    assert trained['last_model_checkpoint'].endswith('checkpoint-2')
    assert trained['log_history'][-1]['train_loss'] > 0


def test_base_arguments_from_pretrained_gives_back_the_run(trained, qwen2_dir):
    args = BaseArguments.from_pretrained(trained['last_model_checkpoint'])
    assert args.model == qwen2_dir
    assert args.model_type == 'qwen2'
    assert args.template == 'qwen'
    assert args.system == 'You are a careful assistant.'


def test_swift_from_pretrained_and_pt_engine_answer_a_batch(trained, qwen2_dir):
    model, tokenizer = get_model_tokenizer(safe_snapshot_download(qwen2_dir))
    model = Swift.from_pretrained(model, trained['last_model_checkpoint'])
    template = get_template(model.model_meta.template, tokenizer, default_system='You are a helpful assistant.')
    engine = PtEngine.from_model_template(model, template, max_batch_size=2)
    requests = [InferRequest(messages=[{'role': 'user', 'content': 'who are you?'}]),
                InferRequest(messages=[{'role': 'user', 'content': '浙江的省会在哪？'},
                                       {'role': 'assistant', 'content': '杭州'},
                                       {'role': 'user', 'content': '这里有什么好吃的'}])]
    responses = engine.infer(requests, RequestConfig(max_tokens=6, temperature=0))
    assert len(responses) == 2
    for response in responses:
        assert isinstance(response.choices[0].message.content, str)
        assert response.choices[0].finish_reason in ('stop', 'length')
        assert 0 < response.usage.completion_tokens <= 6
    # Batched answers equal answers computed one at a time (left padding must not change greedy output).
    alone = PtEngine.from_model_template(model, template, max_batch_size=1).infer(
        requests, RequestConfig(max_tokens=6, temperature=0))
    assert [r.choices[0].message.content for r in alone] == [r.choices[0].message.content for r in responses]


def test_streaming_yields_the_same_text_as_a_whole_answer(trained, qwen2_dir):
    model, tokenizer = get_model_tokenizer(qwen2_dir)
    engine = PtEngine.from_model_template(model, get_template('qwen', tokenizer))
    request = InferRequest(messages=[{'role': 'user', 'content': 'hello'}])
    whole = engine.infer([request], RequestConfig(max_tokens=8, temperature=0))[0].choices[0]
    chunks = [chunk for chunk, in engine.infer([request], RequestConfig(max_tokens=8, temperature=0, stream=True))]
    assert ''.join(c.choices[0].delta.content for c in chunks) == whole.message.content
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason


def test_ms_swift_demo_streams_several_requests_with_metrics(qwen2_dir):
    """ms-swift's examples/infer/demo.py, which seed 002 points to: an engine from a model folder, InferStats,
    and a stream that yields one list per step, an entry per request (None when it has nothing new)."""
    from swift.plugin import InferStats
    engine = PtEngine(qwen2_dir, max_batch_size=64)
    requests = [InferRequest(messages=[{'role': 'user', 'content': q}]) for q in ('who are you?', 'hello')]
    config = RequestConfig(max_tokens=8, temperature=0)
    metric = InferStats()
    whole = engine.infer(requests, config, metrics=[metric])
    assert metric.compute()['num_generated_tokens'] == sum(r.usage.completion_tokens for r in whole) == 16
    metric.reset()
    texts = ['', '']
    for resp_list in engine.infer(requests, RequestConfig(max_tokens=8, temperature=0, stream=True), metrics=[metric]):
        assert len(resp_list) == 2 and sum(r is not None for r in resp_list) == 1
        for i, resp in enumerate(resp_list):
            texts[i] += resp.choices[0].delta.content if resp is not None else ''
    assert texts == [r.choices[0].message.content for r in whole]
    assert metric.compute()['num_samples'] == 2


def test_closing_a_stream_early_stops_its_generation(qwen2_dir):
    """What a closed browser tab in swift app (or a client that stops reading) does to infer(stream=True)."""
    model, tokenizer = get_model_tokenizer(qwen2_dir)
    engine = PtEngine.from_model_template(model, get_template('qwen', tokenizer))
    request = InferRequest(messages=[{'role': 'user', 'content': 'hello'}])
    config = RequestConfig(max_tokens=200, temperature=0, stream=False)
    assert engine.infer([request], config)[0].usage.completion_tokens == 200  # left alone, it runs to the limit
    steps = []
    model.register_forward_hook(lambda *_: steps.append(1))
    stream = engine.infer([request], RequestConfig(max_tokens=200, temperature=0, stream=True))
    next(stream)
    stream.close()
    for worker in [t for t in threading.enumerate() if t.name == STREAM_THREAD]:
        worker.join()
    assert 0 < len(steps) < 50


def test_hub_id_offline_is_one_clear_error():
    with pytest.raises(SwiftError, match="Qwen/Qwen2.5-7B-Instruct.*HF_HUB_OFFLINE"):
        safe_snapshot_download('Qwen/Qwen2.5-7B-Instruct')


def test_ms_swift_demo_lora_adapter_request_and_add_adapter(qwen2_dir, tmp_path):
    """ms-swift's examples/infer/demo_lora.py (seed 002's multi-LoRA pointer): a LoRA per request, the base model
    in between, a template with the checkpoint's system prompt, and add_adapter(path) for every later request."""
    from swift.llm import AdapterRequest
    from tests.deploy.support import make_adapter
    lora_path = make_adapter(qwen2_dir, str(tmp_path / 'lora1'), seed=1)
    engine = PtEngine(qwen2_dir)
    request = InferRequest(messages=[{'role': 'user', 'content': 'who are you?'}])
    config = RequestConfig(max_tokens=8, temperature=0)
    template = get_template('qwen', engine.processor, 'You are swift-robot, made by swift.')

    def answer(**kwargs):
        return engine.infer([request], config, **kwargs)[0]

    lora = answer(template=template, adapter_request=AdapterRequest('lora1', lora_path))
    base = answer(template=template)
    assert lora.choices[0].message.content != base.choices[0].message.content
    assert answer(template=template, adapter_request=AdapterRequest('lora1', lora_path)).choices == lora.choices
    assert answer().usage.prompt_tokens != base.usage.prompt_tokens  # the engine's own template: another system
    engine.add_adapter(lora_path)
    assert answer(template=template).choices == lora.choices
