"""The server's generation workers: a queue of requests, batched by adapter and settings.

Requests that arrive while a batch runs wait in the queue. The next batch takes the oldest waiting request and
every other one with the same adapter and generation settings, up to ``max_batch_size`` rows. Generation runs in
worker threads, so the event loop keeps answering HTTP (and noticing disconnects) while the model works: one for an
engine that runs one batch at a time (``PtEngine``), several for one that schedules requests itself (vLLM), so that
new batches reach it while others are still generating.

An engine that offers a running batch (``PtEngine.running_batch``, see ``continuous.py``) is served continuously
instead: between two decode steps, waiting requests with the running batch's adapter and sampling settings join it
while there is room, and each request leaves as soon as it ends. Requests it cannot take (seeded, multimodal) run as
static batches, in their turn, once the running batch has drained.
"""
import asyncio
import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..protocol import ChatCompletionResponse, RequestConfig
from ..utils import get_logger
from .base import InferEngine

logger = get_logger()
STOP_GRACE_SECONDS = 5


@dataclass(eq=False)
class Job:
    """One request in the queue. The worker reports to the event loop through ``events``: ``('text', choice,
    delta, logprob entries or None)`` while streaming, then ``('done', response)`` or ``('error', exception)``."""
    prompt: list[int]
    config: RequestConfig
    adapter: str | None
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the event loop when the client goes away; read by the worker every step

    def batch_key(self) -> object:
        # A seeded request runs alone: its sample must not depend on which requests share its batch.
        if self.config.seed is not None:
            return id(self)
        return self.adapter, repr(dataclasses.replace(self.config, stream=False))

    def send(self, *event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop has closed: the server is shutting down and nobody is listening
            pass


class Throughput:
    """Counts finished requests, generated tokens and batches, and logs their rates every ``interval`` seconds."""

    def __init__(self, interval: float):
        self.interval = interval if interval > 0 else None
        self._lock = threading.Lock()  # workers finish batches concurrently
        self._reset(time.monotonic())

    def _reset(self, now: float) -> None:
        self.since, self.requests, self.tokens, self.batches = now, 0, 0, 0
        self.steps, self.step_requests = 0, 0

    def add(self, requests: int, tokens: int, batches: int = 1) -> None:
        with self._lock:
            self.requests += requests
            self.tokens += tokens
            self.batches += batches

    def add_step(self, requests: int) -> None:
        """One decode step of a continuous batch holding ``requests`` requests."""
        with self._lock:
            self.steps += 1
            self.step_requests += requests

    def maybe_log(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self.interval is None or now - self.since < self.interval:
                return
            if self.batches or self.steps:
                elapsed = now - self.since
                # a continuous batch's size is its mean over the decode steps
                per_batch = self.step_requests / self.steps if self.steps else self.requests / self.batches
                logger.info(f'{self.requests / elapsed:.2f} requests/s, {self.tokens / elapsed:.1f} generated '
                            f'tokens/s, {per_batch:.1f} requests per batch')
            self._reset(now)


class BatchScheduler:

    def __init__(self, engine: InferEngine, max_batch_size: int, log_interval: float = 0):
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.throughput = Throughput(log_interval)
        self._pending: deque[Job] = deque()
        self._wakeup = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f'swift-generate-{i}', daemon=True)
                         for i in range(engine.concurrent_batches)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify_all()
        deadline = time.monotonic() + STOP_GRACE_SECONDS  # one grace for all workers, within a SIGTERM's grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def submit(self, job: Job) -> None:
        with self._wakeup:
            self._pending.append(job)
            self._wakeup.notify()

    # ---- worker thread ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        running_batch = getattr(self.engine, 'running_batch', None)
        running = running_batch(self.max_batch_size) if running_batch is not None else None
        if running is not None:
            return self._work_continuously(running)
        while (batch := self._next_batch()) is not None:
            if batch:
                self._run(batch)
            self.throughput.maybe_log()

    def _next_batch(self) -> list[Job] | None:
        """The next batch to run; [] when the wait timed out (time to log); None once stopped."""
        with self._wakeup:
            self._wakeup.wait_for(lambda: self._pending or self._stopped, timeout=self.throughput.interval)
            if self._stopped:
                return None
            return self._take_static()

    def _take_static(self) -> list[Job]:
        """The oldest waiting request and every other one it can share a ``generate`` batch with (under the lock)."""
        waiting = [job for job in self._pending if not job.cancelled]
        if not waiting:
            self._pending.clear()
            return []
        key, batch, rest, rows = waiting[0].batch_key(), [], deque(), 0
        for job in waiting:
            if job.batch_key() == key and (not batch or rows + job.config.n <= self.max_batch_size):
                batch.append(job)
                rows += job.config.n
            else:
                rest.append(job)
        self._pending = rest
        return batch

    # ---- continuous batching ---------------------------------------------------------------------------------
    def _work_continuously(self, running) -> None:
        while True:
            with self._wakeup:
                if not running.entries:
                    self._wakeup.wait_for(lambda: self._pending or self._stopped, timeout=self.throughput.interval)
                if self._stopped:
                    return
                joining, static = self._admit(running)
            if static:
                self._run(static)
            if joining:
                self._join(running, joining)
            if running.entries:
                self.throughput.add_step(len(running.entries))
                for job, response in self._guarded(running, running.step, []) or []:
                    self._finish(job, response)
                    self.throughput.add(1, response.usage.completion_tokens, batches=0)
            self.throughput.maybe_log()

    def _admit(self, running) -> tuple[list[Job], list[Job]]:
        """Under the lock: the waiting requests that join the running batch now, in arrival order up to the first
        that cannot; or, when the batch is empty and the oldest request cannot join one, a static batch."""
        self._pending = deque(job for job in self._pending if not job.cancelled)
        joining = []
        while self._pending:
            job = self._pending[0]
            if not self.engine.can_join(job.prompt, job.config, job.adapter):
                if running.entries or joining:
                    break
                return [], self._take_static()
            if not running.fits(job, joining):
                break
            joining.append(self._pending.popleft())
        return joining, []

    @staticmethod
    def _join(running, joining: list[Job]) -> None:
        """Prefill ``joining`` into the batch; a failed prefill fails those requests, not the running ones."""
        try:
            running.add(joining)
        except Exception as err:  # noqa: BLE001
            logger.error(f'prefill failed for {len(joining)} requests: {type(err).__name__}: {err}')
            for job in joining:
                job.send('error', err)

    @staticmethod
    def _guarded(running, action, joining: list[Job]):
        """Run ``action``; a failure fails the requests in the batch, never the worker."""
        try:
            return action()
        except Exception as err:  # noqa: BLE001
            logger.error(f'generation failed for a running batch of {len(running.entries)}: '
                         f'{type(err).__name__}: {err}')
            running.fail(err)
            return None

    def _run(self, batch: list[Job]) -> None:
        def on_text(index: int, choice: int, text: str, logprobs) -> None:
            if batch[index].config.stream:
                batch[index].send('text', choice, text, logprobs)

        try:
            responses = self.engine.generate([job.prompt for job in batch], batch[0].config, batch[0].adapter,
                                             on_text=on_text, cancelled=lambda index: batch[index].cancelled)
        except Exception as err:  # noqa: BLE001  a failed batch fails its requests, never the worker
            logger.error(f'generation failed for a batch of {len(batch)}: {type(err).__name__}: {err}')
            for job in batch:
                job.send('error', err)
            return
        for job, response in zip(batch, responses):
            self._finish(job, response)
        self.throughput.add(len(batch), sum(response.usage.completion_tokens for response in responses))

    @staticmethod
    def _finish(job: Job, response: ChatCompletionResponse) -> None:
        if job.cancelled:
            logger.info(f'client disconnected; stopped its generation after {response.usage.completion_tokens} '
                        'tokens')
        job.send('done', response)
