"""Continuous batching (``swift/infer/continuous.py``): requests that join a running batch between decode steps
answer exactly as they do alone through ``generate``: the same greedy text, usage, finish reason, streamed deltas
and logprobs, whatever else shares the batch and whenever they joined.

The engine runs the tiny Qwen2 model with a random LoRA adapter, so that greedy answers differ from prompt to
prompt (the bare tiny model answers newlines only).
"""
import asyncio
import pytest

from swift.infer.continuous import RunningBatch
from swift.infer.pt_engine import PtEngine
from swift.infer.scheduler import BatchScheduler, Job
from swift.protocol import InferRequest, RequestConfig

from .support import make_adapter

QUESTIONS = [f'question {i}: what can the {w} do next, and why?' for i, w in enumerate(
    'model robot team data river city lamp forest'.split())]


class _Recorder:
    """A job for ``RunningBatch`` that records what the batch sends it."""

    def __init__(self, prompt, config: RequestConfig, adapter: str | None = 'lora'):
        self.prompt, self.config, self.adapter, self.cancelled = prompt, config, adapter, False
        self.events = []

    def send(self, *event) -> None:
        self.events.append(event)

    def streamed(self, choice: int) -> str:
        return ''.join(text for kind, index, text, _ in self.events if kind == 'text' and index == choice)


@pytest.fixture(scope='module')
def engine(qwen2_dir, tmp_path_factory) -> PtEngine:
    adapter = make_adapter(qwen2_dir, str(tmp_path_factory.mktemp('lora') / 'lora'), seed=3)
    engine = PtEngine(qwen2_dir)
    engine.add_adapter(adapter, 'lora')
    return engine


@pytest.fixture(scope='module')
def prompts(engine) -> list:
    return [engine.encode(InferRequest(messages=[{'role': 'user', 'content': q}])) for q in QUESTIONS]


def _configs() -> list[RequestConfig]:
    """Per-request settings a batch mixes: lengths, streaming, logprobs, stop words, several choices."""
    return [RequestConfig(max_tokens=6, temperature=0), RequestConfig(max_tokens=12, temperature=0, stream=True),
            RequestConfig(max_tokens=9, temperature=0, logprobs=True, top_logprobs=2),
            RequestConfig(max_tokens=12, temperature=0, n=2, stream=True, logprobs=True),
            RequestConfig(max_tokens=10, temperature=0, stop=['叫']),
            RequestConfig(max_tokens=4, temperature=0, stream=True, stop=['开']),
            RequestConfig(max_tokens=11, temperature=0), RequestConfig(max_tokens=7, temperature=0, stream=True)]


def _run_staggered(batch: RunningBatch, jobs: list) -> dict:
    """Admit one waiting job every other step (so jobs join mid-flight), step until all have answered."""
    pending, answers, steps = list(jobs), {}, 0
    while pending or batch.entries:
        if pending and steps % 2 == 0 and batch.fits(pending[0], []):
            batch.add([pending.pop(0)])
        answers.update((id(job), response) for job, response in batch.step())
        steps += 1
    return answers


def _logprob_values(choice) -> list:
    if choice.logprobs is None:
        return None
    return [(e.token, round(e.logprob, 4), [(t.token, round(t.logprob, 4)) for t in e.top_logprobs])
            for e in choice.logprobs.content]


def test_requests_joining_mid_flight_answer_as_alone(engine, prompts):
    jobs = [_Recorder(prompt, config) for prompt, config in zip(prompts, _configs())]
    answers = _run_staggered(engine.running_batch(4), jobs)
    assert len(answers) == len(jobs)
    finishes = set()
    for job in jobs:
        alone = engine.generate([job.prompt], job.config, adapter='lora')[0]
        together = answers[id(job)]
        assert together.usage == alone.usage
        for mine, theirs in zip(together.choices, alone.choices, strict=True):
            assert (mine.message.content, mine.finish_reason) == (theirs.message.content, theirs.finish_reason)
            assert _logprob_values(mine) == _logprob_values(theirs)
            finishes.add(mine.finish_reason)
            if job.config.stream:
                assert job.streamed(mine.index) == mine.message.content
    assert finishes == {'stop', 'length'}  # both ways out of the batch were taken
    assert any(choice.message.content for response in answers.values() for choice in response.choices)


def test_a_batch_holds_one_adapter_and_sampling_setting_and_max_rows(engine, prompts):
    batch = engine.running_batch(3)
    greedy = _Recorder(prompts[0], RequestConfig(max_tokens=3, temperature=0))
    batch.add([greedy])
    assert not batch.fits(_Recorder(prompts[1], RequestConfig(max_tokens=3, temperature=0.7)), [])
    assert not batch.fits(_Recorder(prompts[1], RequestConfig(max_tokens=3, temperature=0), adapter=None), [])
    assert not batch.fits(_Recorder(prompts[1], RequestConfig(max_tokens=3, temperature=0, n=3)), [])
    assert batch.fits(_Recorder(prompts[1], RequestConfig(max_tokens=9, temperature=0, n=2, stream=True)), [])
    while batch.entries:
        batch.step()
    assert batch.fits(_Recorder(prompts[1], RequestConfig(max_tokens=3, temperature=0.7, n=5)), [])


def test_the_server_scheduler_mixes_continuous_and_generate_requests(engine, prompts):
    """Through the server's worker: greedy requests with and without the adapter, a sampled one and a seeded one
    (which runs on generate) all arrive at once; each greedy answer equals its answer alone."""
    specs = [(p, RequestConfig(max_tokens=8, temperature=0), 'lora' if i % 3 else None)
             for i, p in enumerate(prompts)]
    specs += [(prompts[0], RequestConfig(max_tokens=5, temperature=0.9), 'lora'),
              (prompts[1], RequestConfig(max_tokens=5, temperature=0.9, seed=5), 'lora')]

    async def serve() -> list:
        jobs = [Job(prompt, config, adapter, asyncio.get_running_loop()) for prompt, config, adapter in specs]
        for job in jobs:
            scheduler.submit(job)
        return await asyncio.wait_for(asyncio.gather(*(_last_event(job) for job in jobs)), 120)

    scheduler = BatchScheduler(engine, 4)
    scheduler.start()
    try:
        results = asyncio.run(serve())
    finally:
        scheduler.stop()
    assert [kind for kind, _ in results] == ['done'] * len(specs)
    for (prompt, config, adapter), (_, response) in zip(specs[:len(prompts)], results):
        alone = engine.generate([prompt], config, adapter=adapter)[0]
        assert response.choices[0].message.content == alone.choices[0].message.content
        assert response.usage == alone.usage
    seeded = engine.generate([specs[-1][0]], specs[-1][1], adapter='lora')[0]
    assert results[-1][1].choices[0].message.content == seeded.choices[0].message.content


async def _last_event(job: Job) -> tuple:
    while True:
        event = await job.events.get()
        if event[0] in ('done', 'error'):
            return event[0], event[1]
