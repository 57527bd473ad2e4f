"""``logprobs`` / ``top_logprobs`` from ``PtEngine``: checked against a plain forward pass of the same model."""
import dataclasses
import math

import pytest
import torch

from swift.infer import PtEngine
from swift.infer.tokens import token_bytes
from swift.protocol import InferRequest, RequestConfig
from swift.utils import SwiftError

PROMPTS = ['who are you?', 'tell me a long story about a robot, a team and their data, please']


@pytest.fixture(scope='module')
def engine(qwen2_dir) -> PtEngine:
    """The tiny model with a random LoRA on top: the bare one answers newlines only, which would test little."""
    from peft import LoraConfig, get_peft_model

    from swift.model import get_model_tokenizer
    from swift.template import get_template
    model, tokenizer = get_model_tokenizer(qwen2_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules='all-linear'))
    for name, param in model.named_parameters():
        if 'lora_B' in name:  # peft starts B at zero, which would leave the answers unchanged
            torch.nn.init.normal_(param, std=1.0)
    return PtEngine(model, get_template('qwen', tokenizer), max_batch_size=2)


@pytest.fixture(scope='module')
def id_of_bytes(engine) -> dict[bytes, int]:
    """Token bytes back to the token id; unique for the byte-level BPE tokenizer of the tiny models."""
    ids = {token_bytes(engine.tokenizer, i): i for i in range(len(engine.tokenizer))}
    assert len(ids) == len(engine.tokenizer)
    return ids


def _requests(*prompts: str) -> list[InferRequest]:
    return [InferRequest(messages=[{'role': 'user', 'content': p}]) for p in prompts]


def _forward_logprobs(engine: PtEngine, ids: list[int]) -> torch.Tensor:
    """log_softmax over the vocabulary at each position of one unpadded sequence."""
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([ids], device=engine.model.device)).logits[0]
    return torch.log_softmax(logits.float(), dim=-1).cpu()


def _check_against_forward(engine, id_of_bytes, request, choice, top: int) -> list[int]:
    """Each entry's logprob is the forward pass's at its position; greedy picks the argmax, top_logprobs[0]."""
    prompt = engine.encode(request)
    content = choice.logprobs.content
    generated = [id_of_bytes[bytes(entry.bytes)] for entry in content]
    assert engine.template.decode(generated) == choice.message.content
    expected = _forward_logprobs(engine, prompt + generated)
    for step, (token_id, entry) in enumerate(zip(generated, content)):
        row = expected[len(prompt) + step - 1]  # the logits at a position predict the next token
        assert entry.logprob == pytest.approx(row[token_id].item(), abs=1e-4)
        assert token_id == row.argmax().item()
        assert entry.token == bytes(entry.bytes).decode('utf-8', errors='replace')
        assert len(entry.top_logprobs) == top
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        if top:
            assert (entry.top_logprobs[0].token, entry.top_logprobs[0].bytes) == (entry.token, entry.bytes)
            assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-6)
            expected_top = row.topk(top).values.tolist()
            assert values == pytest.approx(expected_top, abs=1e-4)
    return generated


def _check_counts(response, max_tokens: int) -> None:
    choice = response.choices[0]
    n_content = len(choice.logprobs.content)
    if choice.finish_reason == 'length':
        assert n_content == response.usage.completion_tokens == max_tokens
    else:  # the stop token counts as a completion token but is not part of the content
        assert n_content <= response.usage.completion_tokens <= n_content + 1


def test_greedy_logprobs_match_a_forward_pass(engine, id_of_bytes):
    request = _requests(PROMPTS[0])[0]
    response = engine.infer([request], RequestConfig(max_tokens=8, temperature=0, logprobs=True, top_logprobs=5))[0]
    choice = response.choices[0]
    assert 0 < len(choice.logprobs.content) <= 8
    _check_against_forward(engine, id_of_bytes, request, choice, top=5)
    _check_counts(response, 8)
    # the same text as without logprobs
    plain = engine.infer([request], RequestConfig(max_tokens=8, temperature=0))[0].choices[0]
    assert plain.message.content == choice.message.content and plain.logprobs is None


def test_a_left_padded_batch_gives_each_row_its_own_logprobs(engine, id_of_bytes):
    requests = _requests(*PROMPTS)
    assert len(engine.encode(requests[0])) != len(engine.encode(requests[1]))
    config = RequestConfig(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    responses = engine.infer(requests, config)  # max_batch_size=2: one generate call, the shorter one padded
    for request, response in zip(requests, responses):
        _check_against_forward(engine, id_of_bytes, request, response.choices[0], top=3)
        _check_counts(response, 6)
        alone = engine.infer([request], config)[0].choices[0].logprobs.content
        assert [e.token for e in alone] == [e.token for e in response.choices[0].logprobs.content]


def test_top_logprobs_zero_and_the_dict_shape(engine):
    response = engine.infer(_requests(PROMPTS[0]), RequestConfig(max_tokens=3, temperature=0, logprobs=True))[0]
    body = response.to_dict()['choices'][0]['logprobs']
    assert set(body) == {'content'}
    for entry in body['content']:
        assert set(entry) == {'token', 'logprob', 'bytes', 'top_logprobs'}
        assert entry['top_logprobs'] == [] and entry['logprob'] <= 0
        assert all(isinstance(b, int) and 0 <= b < 256 for b in entry['bytes'])


def test_the_stop_token_is_counted_but_has_no_logprob(engine, id_of_bytes, monkeypatch):
    request = _requests(PROMPTS[1])[0]
    config = RequestConfig(max_tokens=8, temperature=0, logprobs=True)
    free = engine.infer([request], config)[0].choices[0]
    greedy = [id_of_bytes[bytes(e.bytes)] for e in free.logprobs.content]
    assert len(greedy) >= 3, 'the fixture adapter must make the tiny model answer with several tokens'
    stop_id = greedy[2]  # make the third greedy token a stop token: generation ends on its first occurrence
    stops_at = greedy.index(stop_id)
    monkeypatch.setattr(engine, 'stop_token_ids', [stop_id])
    response = engine.infer([request], config)[0]
    choice = response.choices[0]
    assert choice.finish_reason == 'stop'
    assert [id_of_bytes[bytes(e.bytes)] for e in choice.logprobs.content] == greedy[:stops_at]
    assert response.usage.completion_tokens == stops_at + 1


def test_a_stop_word_cuts_the_logprobs_where_it_cuts_the_content(engine):
    request = _requests(PROMPTS[0])[0]
    free = engine.infer([request], RequestConfig(max_tokens=12, temperature=0, logprobs=True))[0].choices[0]
    text = free.message.content
    cut = len(text) // 2
    stop = text[cut:cut + 2]
    assert len(text) >= 4 and text.find(stop) == cut and stop.strip(), f'no usable stop word in {text!r}'
    choice = engine.infer([request], RequestConfig(max_tokens=12, temperature=0, logprobs=True, stop=[stop]))[0]
    choice = choice.choices[0]
    assert choice.message.content == text[:cut]
    pieces = [bytes(e.bytes) for e in choice.logprobs.content]
    assert b''.join(pieces).decode('utf-8', 'replace').startswith(text[:cut])
    assert not b''.join(pieces[:-1]).decode('utf-8', 'replace').startswith(text[:cut]) or cut == 0


def test_sampling_reports_the_sampling_distribution(engine):
    config = RequestConfig(max_tokens=6, temperature=0.7, top_k=3, seed=0, logprobs=True, top_logprobs=5)
    content = engine.infer(_requests(PROMPTS[0]), config)[0].choices[0].logprobs.content
    for entry in content:
        values = [t.logprob for t in entry.top_logprobs]
        # top_k=3: the three kept tokens share all the probability; the rest are ruled out (-9999.0, as OpenAI)
        assert math.isclose(sum(math.exp(v) for v in values[:3]), 1.0, abs_tol=1e-4)
        assert values[3:] == [-9999.0, -9999.0]
        assert any(abs(entry.logprob - v) < 1e-6 for v in values[:3])  # the sampled token was one of them


def _streamed(engine: PtEngine, request: InferRequest, config: RequestConfig) -> list:
    """The chunks of ``infer(stream=True)``, checked to carry entries for no token beyond the text sent so far:
    only the last text chunk may, with a stop word cutting into its last token, as the whole answer's entries do."""
    chunks = [chunk for chunk, in engine.infer([request], dataclasses.replace(config, stream=True))]
    text, spelled = '', b''
    for chunk in chunks[:-2]:  # then the last text chunk, and the one that reports the finish reason
        choice = chunk.choices[0]
        text += choice.delta.content
        spelled += b''.join(bytes(entry.bytes) for entry in choice.logprobs.content)
        assert text.startswith(spelled.decode('utf-8', 'replace').rstrip('\ufffd'))
    return chunks


def test_streamed_logprobs_add_up_to_the_whole_answers(engine):
    request = _requests(PROMPTS[0])[0]
    config = RequestConfig(max_tokens=12, temperature=0, logprobs=True, top_logprobs=3)
    whole = engine.infer([request], config)[0].choices[0]
    text = whole.message.content
    cut = len(text) // 2
    stop = text[cut:cut + 2]
    assert len(text) >= 4 and text.find(stop) == cut and stop.strip(), f'no usable stop word in {text!r}'
    stopped = dataclasses.replace(config, stop=[stop])
    for config, whole in [(config, whole), (stopped, engine.infer([request], stopped)[0].choices[0])]:
        chunks = _streamed(engine, request, config)
        with_entries = [c.choices[0].logprobs.content for c in chunks if c.choices[0].logprobs is not None]
        assert len(with_entries) == len(chunks) - 1  # every text chunk has its list, even an empty one
        assert sum(map(bool, with_entries)) > 1  # spread over the chunks, not sent at the end
        assert [entry for entries in with_entries for entry in entries] == whole.logprobs.content  # same numbers
        assert ''.join(c.choices[0].delta.content for c in chunks) == whole.message.content


def test_streamed_logprobs_of_a_sampled_batch_follow_their_rows(engine):
    prompts = [engine.encode(request) for request in _requests(*PROMPTS)]
    config = RequestConfig(max_tokens=6, temperature=1.0, seed=1, n=2, logprobs=True, top_logprobs=1)
    streamed: dict[tuple[int, int], list] = {}

    def on_text(prompt: int, choice: int, text: str, entries) -> None:
        streamed.setdefault((prompt, choice), []).extend(entries)

    responses = engine.generate(prompts, config, on_text=on_text)  # 4 rows in one generate
    wholes = {(p, c.index): c.logprobs.content for p, response in enumerate(responses) for c in response.choices}
    assert streamed == wholes and len({tuple(e.token for e in entries) for entries in wholes.values()}) > 1


@pytest.mark.parametrize('config, needle', [
    (RequestConfig(top_logprobs=3), 'needs logprobs'),
    (RequestConfig(logprobs=True, top_logprobs=21), 'between 0 and 20'),
    (RequestConfig(logprobs=True, top_logprobs=-1), 'between 0 and 20'),
])
def test_bad_logprob_settings_are_refused(engine, config, needle):
    with pytest.raises(SwiftError, match=needle):
        engine.infer(_requests(PROMPTS[0]), config)
