#!/usr/bin/env python3
"""``swift deploy`` under a long mixed load: valid and malformed requests from many threads, then the figures.

The soak: greedy reference answers asked one at a time; a warm-up round of the same mix; the server's resident
memory; then ``requests`` requests from ``threads`` threads, about 10% malformed in varied ways (see ``MALFORMED``;
one kind is a client that disconnects mid-stream) and half of the valid ones streamed; the memory again; and one
last request to show the server still answers. Every request is a fresh connection to 127.0.0.1.

Printed: requests/s, p50/p99 latency of the valid requests, 5xx answers, dropped connections, greedy answers that
differ from the prompt's answer alone, malformed requests not answered with a 4xx in OpenAI's error shape, and the
server's VmRSS after the warm-up and after the soak. ``tests/deploy/test_soak.py`` runs ``run_soak`` on fewer
requests and asserts on these figures.

    .venv/bin/python bench/soak.py [--requests 1000] [--threads 32] [--max-tokens 12]
"""
import argparse
import http.client
import json
import os
import random
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HOST = '127.0.0.1'
CHAT = '/v1/chat/completions'
JSON = 'application/json'
REQUEST_TIMEOUT_S = 120  # one request, queueing included: 32 clients share one generation worker
MALFORMED_SHARE = 0.1
GARBAGE_BYTES = 200 * 1024
DISCONNECT_MAX_TOKENS = 512  # long enough that the client is gone well before the answer ends
RSS_GROWTH_LIMIT = 1.5
PROMPTS = [f'question {i}: what can the {word} do about {topic}?' for i, (word, topic) in enumerate(
    (w, t) for w in ('model', 'robot', 'team', 'garden') for t in ('rain', 'data', 'music', 'time'))]


# ---- one request --------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: str  # 'greedy', 'stream', or the malformed kind's name
    status: int | None = None  # None: no status line came back
    latency: float = 0.0
    answer: str | None = None  # a valid request's text
    prompt: str | None = None
    error: str | None = None  # why the exchange broke off (a dropped connection), or what was wrong with it
    stream_error: bool = False  # a stream that began with 200 and then carried a server error


def _send(port: int, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request('POST', path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _chat_body(model: str, content, max_tokens: int, **fields) -> dict:
    return {'model': model, 'messages': [{'role': 'user', 'content': content}], 'max_tokens': max_tokens,
            'temperature': 0, **fields}


def _json(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def _streamed_text(raw: bytes, outcome: Outcome) -> str | None:
    """The text of a chat stream; None, with ``outcome.error`` set, when it carries an error; ValueError when it
    does not end with [DONE]."""
    blocks = raw.decode().split('\n\n')
    events = [json.loads(block.removeprefix('data: ')) for block in blocks[:-2]]
    errors = [event['error'] for event in events if 'error' in event]
    if errors:
        outcome.error, outcome.stream_error = f'the stream carries an error: {errors[0]}', True
        return None
    if blocks[-2:] != ['data: [DONE]', '']:
        raise ValueError(f'the stream does not end with [DONE]: {raw[-200:]!r}')
    return ''.join(event['choices'][0]['delta']['content'] for event in events if event['choices'])


def ask(port: int, model: str, prompt: str, max_tokens: int, stream: bool = False) -> Outcome:
    """One valid greedy chat request, whole or streamed."""
    outcome = Outcome('stream' if stream else 'greedy', prompt=prompt)
    start = time.monotonic()
    try:
        outcome.status, raw = _send(port, CHAT, _json(_chat_body(model, prompt, max_tokens, stream=stream)),
                                    {'Content-Type': JSON})
        if outcome.status == 200 and stream:
            outcome.answer = _streamed_text(raw, outcome)
        elif outcome.status == 200:
            outcome.answer = json.loads(raw)['choices'][0]['message']['content']
        else:
            outcome.error = raw[:300].decode(errors='replace')
    except (OSError, http.client.HTTPException, ValueError) as err:
        outcome.error = f'{type(err).__name__}: {err}'
    outcome.latency = time.monotonic() - start
    return outcome


# ---- malformed requests -------------------------------------------------------------------------------------------
# Each gives (path, body, Content-Type) for the served model name, the context length and a variant number: the
# n-th request of a kind takes its n-th variant, so a long soak sends every one.
def _pick(options: list, variant: int):
    return options[variant % len(options)]


def _invalid_json(model, context, variant):
    return CHAT, _pick([f'{{"model": "{model}", "messages": [', "{'model': 1}", '{"model": }'], variant).encode(), JSON


def _wrong_content_type(model, context, variant):
    return CHAT, _json(_chat_body(model, 'hi', 4)), _pick(['text/plain', 'application/xml', 'multipart/form-data'],
                                                          variant)


def _missing_messages(model, context, variant):
    return CHAT, _json(_pick([{'model': model, 'max_tokens': 4}, {'model': model, 'prompt': 'hi'}], variant)), JSON


def _non_list_messages(model, context, variant):
    messages = _pick(['hi', {'role': 'user', 'content': 'hi'}, None, 5], variant)
    return CHAT, _json({'model': model, 'messages': messages}), JSON


def _unknown_role(model, context, variant):
    body = _chat_body(model, 'hi', 4)
    body['messages'][0]['role'] = _pick(['robot', '', 7, 'developer'], variant)
    return CHAT, _json(body), JSON


def _non_string_content(model, context, variant):
    content = _pick([[{'type': 'text', 'text': 5}], 5, [{'type': 'text'}], {'text': 'hi'}, [5], True], variant)
    return CHAT, _json(_chat_body(model, content, 4)), JSON


def _negative_max_tokens(model, context, variant):
    return CHAT, _json(_chat_body(model, 'hi', _pick([-1, 0, -10**9], variant))), JSON


def _huge_max_tokens(model, context, variant):
    return CHAT, _json(_chat_body(model, 'hi', _pick([10**30, context, 10**9], variant))), JSON


def _negative_temperature(model, context, variant):
    return CHAT, _json(_chat_body(model, 'hi', 4, temperature=_pick([-1, -1e-9, -1e300], variant))), JSON


def _zero_n(model, context, variant):
    return CHAT, _json(_chat_body(model, 'hi', 4, n=0)), JSON


def _unknown_model(model, context, variant):
    return CHAT, _json(_chat_body(f'{model}-nope', 'hi', 4)), JSON


def _prompt_too_long(model, context, variant):
    return CHAT, _json(_chat_body(model, 'word ' * (context + 16), 4)), JSON


def _garbage_body(model, context, variant):
    rng = random.Random(variant)
    body = _pick([lambda: rng.randbytes(GARBAGE_BYTES), lambda: b'[' * GARBAGE_BYTES,  # nested past the parser
                  lambda: bytes(rng.choice(b'abc{}[]":, ') for _ in range(GARBAGE_BYTES))], variant)()
    return CHAT, body, JSON


def _unpaired_surrogate(model, context, variant):
    return CHAT, _json(_chat_body(model, _pick(['hi \ud800', '\udfff'], variant), 4)), JSON


def _empty_prompt(model, context, variant):
    return '/v1/completions', _json({'model': model, 'prompt': '', 'max_tokens': 4}), JSON


def _out_of_range_sampling(model, context, variant):
    fields = _pick([{'seed': 2**70}, {'repetition_penalty': 1e-300, 'temperature': 1}, {'top_p': 0},
                    {'top_logprobs': 2}], variant)
    return CHAT, _json(_chat_body(model, 'hi', 4, **fields)), JSON


MALFORMED = {fn.__name__.lstrip('_'): fn for fn in (
    _invalid_json, _wrong_content_type, _missing_messages, _non_list_messages, _unknown_role, _non_string_content,
    _negative_max_tokens, _huge_max_tokens, _negative_temperature, _zero_n, _unknown_model, _prompt_too_long,
    _garbage_body, _unpaired_surrogate, _empty_prompt, _out_of_range_sampling)}
DISCONNECT = 'disconnect_mid_stream'
STATUS = {'wrong_content_type': 415, 'unknown_model': 404}  # the others: 400


def _error_shape_problem(status: int, raw: bytes, expected: int) -> str | None:
    """What keeps an answer from being the ``expected`` 4xx in OpenAI's error shape; None when it is one."""
    if status != expected:
        return f'status {status}, not {expected}: {raw[:200]!r}'
    try:
        error = json.loads(raw)['error']
    except (ValueError, KeyError, TypeError):
        return f'status {status} without an error object: {raw[:200]!r}'
    if set(error) != {'message', 'type', 'code'} or not isinstance(error['message'], str) or not error['message']:
        return f'status {status} with an error of another shape: {error}'
    return None


def malformed(port: int, model: str, kind: str, context: int, variant: int) -> Outcome:
    path, body, content_type = MALFORMED[kind](model, context, variant)
    outcome = Outcome(kind)
    start = time.monotonic()
    try:
        outcome.status, raw = _send(port, path, body, {'Content-Type': content_type})
        outcome.error = _error_shape_problem(outcome.status, raw, STATUS.get(kind, 400))
    except (OSError, http.client.HTTPException) as err:
        outcome.error = f'{type(err).__name__}: {err}'
    outcome.latency = time.monotonic() - start
    return outcome


def disconnect(port: int, model: str) -> Outcome:
    """A streaming client that reads the first chunk and hangs up: the server owes it nothing more."""
    outcome = Outcome(DISCONNECT)
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    start = time.monotonic()
    try:
        conn.request('POST', CHAT, _json(_chat_body(model, 'tell me a long story', DISCONNECT_MAX_TOKENS, stream=True)),
                     {'Content-Type': JSON})
        response = conn.getresponse()
        outcome.status = response.status
        if not response.readline().startswith(b'data: '):
            outcome.error = 'the stream did not start with a data line'
        conn.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, http.client.HTTPException) as err:
        outcome.error = f'{type(err).__name__}: {err}'
    finally:
        conn.close()
    outcome.latency = time.monotonic() - start
    return outcome


# ---- the soak -----------------------------------------------------------------------------------------------------
VALID = ('greedy', 'stream')
Request = tuple[str, str | int]  # (kind, the prompt of a valid request or the variant of a malformed one)


def plan(n: int, rng: random.Random, first_variant: int = 0) -> list[Request]:
    """``n`` requests in a random order. About 10% malformed, every kind in turn (the disconnecting client among
    them), each next one of a kind its next variant; the valid ones half streamed, over every prompt in turn."""
    kinds = [*MALFORMED, DISCONNECT]
    n_bad = min(n, max(len(kinds), round(n * MALFORMED_SHARE)))
    requests = [(kinds[i % len(kinds)], first_variant + i // len(kinds)) for i in range(n_bad)]
    requests += [(VALID[i % 2], PROMPTS[i % len(PROMPTS)]) for i in range(n - n_bad)]
    rng.shuffle(requests)
    return requests


def run_requests(port: int, model: str, requests: list[Request], threads: int, max_tokens: int,
                 context: int) -> list[Outcome]:
    def one(request: Request) -> Outcome:
        kind, detail = request
        if kind in VALID:
            return ask(port, model, detail, max_tokens, stream=kind == 'stream')
        if kind == DISCONNECT:
            return disconnect(port, model)
        return malformed(port, model, kind, context, detail)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, requests))


def rss_kb(pid: int) -> int:
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:'))


def references(port: int, model: str, max_tokens: int) -> dict[str, str]:
    """Each prompt's greedy answer, asked alone."""
    answers = {}
    for prompt in PROMPTS:
        outcome = ask(port, model, prompt, max_tokens)
        if outcome.answer is None:
            raise RuntimeError(f'the reference request for {prompt!r} failed: {outcome.status} {outcome.error}')
        answers[prompt] = outcome.answer
    return answers


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * q))] if values else float('nan')


def problems(outcomes: list[Outcome], reference: dict[str, str]) -> dict[str, list[str]]:
    """Each requirement's offending requests: 5xx answers (a stream's error event too), dropped connections, greedy
    answers unlike the prompt's alone, failed valid requests, malformed ones without an OpenAI 4xx."""
    valid = [o for o in outcomes if o.kind in VALID]
    bad = [o for o in outcomes if o.kind in MALFORMED]
    return {
        'server_errors': [f'{o.kind}: {o.status} {o.error}' for o in outcomes
                          if (o.status or 0) >= 500 or o.stream_error],
        'dropped': [f'{o.kind}: {o.error}' for o in outcomes if o.status is None],
        'mismatched': [f'{o.prompt!r}: {o.answer!r}, alone {reference[o.prompt]!r}' for o in valid
                       if o.answer is not None and o.answer != reference[o.prompt]],
        'valid_failed': [f'{o.kind}: {o.status} {o.error}' for o in valid if o.answer is None],
        'malformed_not_4xx': [f'{o.kind}: {o.error}' for o in bad if o.error],
        'disconnects_failed': [f'{o.status} {o.error}' for o in outcomes if o.kind == DISCONNECT
                               and (o.status != 200 or o.error)],
    }


def figures(outcomes: list[Outcome], reference: dict[str, str], seconds: float) -> dict:
    latencies = [o.latency for o in outcomes if o.kind in VALID]
    return {'requests': len(outcomes), 'malformed': len(outcomes) - len(latencies), 'seconds': round(seconds, 2),
            'requests_per_s': round(len(outcomes) / seconds, 2), 'p50_s': round(percentile(latencies, 0.5), 3),
            'p99_s': round(percentile(latencies, 0.99), 3), 'kinds': sorted({o.kind for o in outcomes}),
            **problems(outcomes, reference)}


def run_soak(port: int, pid: int, model: str, requests: int = 1000, threads: int = 32, max_tokens: int = 12,
             context: int = 4096, seed: int = 0) -> dict:
    """The whole soak against the server on ``port`` (process ``pid``) serving ``model``: ``figures`` of the
    soak, what went wrong in the warm-up, the memory after each, and whether a last request is answered."""
    reference = references(port, model, max_tokens)
    rng = random.Random(seed)
    # every kind, and enough to fill batches: the memory after it is the baseline
    warm_up = run_requests(port, model, plan(max(2 * (len(MALFORMED) + 1), requests // 10), rng), threads,
                           max_tokens, context)
    rss_warm = rss_kb(pid)
    start = time.monotonic()
    outcomes = run_requests(port, model, plan(requests, rng, first_variant=1), threads, max_tokens, context)
    result = figures(outcomes, reference, time.monotonic() - start)
    rss_after = rss_kb(pid)
    last = ask(port, model, PROMPTS[0], max_tokens)
    result.update(warm_up_problems=[f'{name}: {problem}' for name, found in problems(warm_up, reference).items()
                                    for problem in found],
                  rss_warm_kb=rss_warm, rss_after_kb=rss_after, rss_ratio=round(rss_after / rss_warm, 3),
                  still_serving=last.status == 200 and last.answer == reference[PROMPTS[0]])
    return result


# ---- the command --------------------------------------------------------------------------------------------------
COUNTED = ('server_errors', 'dropped', 'mismatched', 'valid_failed', 'malformed_not_4xx', 'disconnects_failed',
           'warm_up_problems')


def report(result: dict) -> str:
    lines = [f"{result['requests']} requests ({result['malformed']} malformed) in {result['seconds']} s: "
             f"{result['requests_per_s']} requests/s; valid requests p50 {result['p50_s']} s, p99 {result['p99_s']} s"]
    lines += [f'{name}: {len(result[name])}' + ''.join(f'\n    {item}' for item in result[name][:5])
              for name in COUNTED]
    lines.append(f"VmRSS after warm-up {result['rss_warm_kb']} kB, after the soak {result['rss_after_kb']} kB: "
                 f"x{result['rss_ratio']} (limit x{RSS_GROWTH_LIMIT}); still serving: {result['still_serving']}")
    return '\n'.join(lines)


def serve_and_soak(args: argparse.Namespace) -> dict:
    """Build the tiny model and a random LoRA on it (the bare model answers newlines only), serve them with
    ``swift deploy``, soak."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from swift.utils.tiny_models import build_tiny_model
    from tests.deploy.support import free_port, make_adapter, running_swift
    with tempfile.TemporaryDirectory(prefix='swift-soak-') as work:
        model_dir = build_tiny_model(os.path.join(work, 'model'), max_position_embeddings=args.context)
        adapter = make_adapter(model_dir, os.path.join(work, 'lora'), seed=0)
        port = free_port()
        argv = ['deploy', '--model', model_dir, '--adapters', adapter, '--served_model_name', 'tiny',
                '--infer_backend', 'pt', '--temperature', '0', '--host', HOST, '--port', str(port)]
        with running_swift(argv, f'http://{HOST}:{port}/health', os.path.join(work, 'server.log')) as proc:
            return run_soak(port, proc.pid, 'tiny', args.requests, args.threads, args.max_tokens, args.context,
                            args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=1000)
    parser.add_argument('--threads', type=int, default=32)
    parser.add_argument('--max-tokens', type=int, default=12)
    parser.add_argument('--context', type=int, default=4096, help="the tiny model's max_position_embeddings")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args()
    result = serve_and_soak(args)
    print(report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
