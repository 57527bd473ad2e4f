"""What SGLang's and LMDeploy's engines share (``SglangEngine``, ``LmdeployEngine``), beyond ``LoopEngine``.

Each choice of each prompt is one backend request, streamed as ``Delta``s. Neither backend takes ``n`` choices per request the way
OpenAI means them, so ``n`` requests are sent, the i-th with seed ``seed + i`` so that seeded choices still differ.
Stop words are matched here, not by the backends: LMDeploy knows stop tokens only (its ``stop_words`` stop on any
token that merely contains the word), and SGLang streams the start of a stop word before it trims the word from its
last output. Text that could start a stop word is held back until the next delta settles it. A subclass opens one
request's stream (``_open``) and aborts it (``_abort``).
"""
import asyncio
import uuid
from abc import abstractmethod
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from ..protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatCompletionTokenLogprob,
                        ChatMessage, ChoiceLogprobs, RequestConfig)
from ..template import Template
from .base import Choice, OnText, check_logprobs
from .loop_engine import LoopEngine
from .stopping import truncate_at_stop

# Rows handed over at once: the backend schedules requests itself, so they reach it as they come, not in
# --max_batch_size chunks (for the pt backend, as with vLLM).
ROWS_AT_ONCE = 256


@dataclass
class Delta:
    """What one step of a backend request adds: its new text, the number of tokens generated so far (a stop token
    included, as usage counts it), the logprob entries of the new content tokens (None without logprobs) and, on
    the last step, the backend's finish reason ('stop', 'length' or 'abort')."""
    text: str
    n_tokens: int
    entries: list[ChatCompletionTokenLogprob] | None = None
    finish_reason: str | None = None


@dataclass
class ChoiceRequest:
    """One backend request: choice ``choice`` of a prompt, with the room it has to generate."""
    prompt: list[int]
    choice: int
    max_tokens: int
    adapter: str | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class _Completion:
    entries: list[ChatCompletionTokenLogprob] | None
    text: str = ''
    sent: int = 0  # characters of text already passed to on_text
    n_tokens: int = 0
    finish_reason: str | None = None


class ChoiceStreamEngine(LoopEngine):

    def __init__(self, template: Template, model_name: str, thread_name: str):
        super().__init__(template, ROWS_AT_ONCE, model_name, thread_name)

    @abstractmethod
    def _open(self, request: ChoiceRequest, config: RequestConfig) -> AsyncIterator[Delta]:
        """The deltas of one backend request, started by iterating."""

    @abstractmethod
    async def _abort(self, request: ChoiceRequest) -> None:
        """End a running request early."""

    def generate(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None = None,
                 on_text: OnText | None = None, cancelled: Callable[[int], bool] | None = None
                 ) -> list[ChatCompletionResponse]:
        self.check_adapter(adapter)
        check_logprobs(config)
        # built up front, so that a prompt too long for the context fails before any request runs
        rows = [[ChoiceRequest(prompt, choice, self.max_new_tokens(len(prompt), config.max_tokens), adapter)
                 for choice in range(config.n)] for prompt in prompts]
        stop_words = self.stop_words(config)

        completions = self._wait(self._all_or_none([self._run(index, request, config, stop_words, on_text, cancelled)
                                                    for index, row in enumerate(rows) for request in row]))
        n = config.n
        return [self.response(prompt, [_choice(c, completion) for c, completion in
                                       enumerate(completions[i * n:(i + 1) * n])])
                for i, prompt in enumerate(prompts)]

    async def _run(self, index: int, request: ChoiceRequest, config: RequestConfig, stop_words: list[str],
                   on_text: OnText | None, cancelled: Callable[[int], bool] | None) -> _Completion:
        """One request to its end, its text passed on as it settles; aborted when ``cancelled(index)``."""
        completion = _Completion([] if config.logprobs else None)
        emit = (lambda text, entries: on_text(index, request.choice, text, entries)) if on_text else None
        watcher = None
        if cancelled is not None:
            watcher = asyncio.create_task(self._abort_when(lambda: cancelled(index), lambda: self._abort(request)))
        try:
            async with aclosing(self._open(request, config)) as deltas:
                async for delta in deltas:
                    stopped = _add(completion, delta, stop_words)
                    _send(completion, 0 if stopped else _held_back(completion.text, stop_words), delta.entries, emit)
                    # a stop word ended the text, or the requester went away (checked here too, for a backend that
                    # cannot abort a request it has not started)
                    if stopped or (cancelled is not None and cancelled(index)):
                        await self._abort(request)
                        break
        finally:
            if watcher is not None:
                watcher.cancel()
        _send(completion, 0, None, emit)  # whatever was held back, now that nothing can follow it
        return completion


def _add(completion: _Completion, delta: Delta, stop_words: list[str]) -> bool:
    """Add a delta; True when the text now holds a stop word, cut there."""
    completion.n_tokens = max(completion.n_tokens, delta.n_tokens)
    completion.finish_reason = delta.finish_reason or completion.finish_reason
    if completion.entries is not None and delta.entries:
        completion.entries += delta.entries
    completion.text, stopped = truncate_at_stop(completion.text + delta.text, stop_words)
    if stopped:
        completion.finish_reason = 'stop'
    return stopped


def _held_back(text: str, stop_words: list[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop word, and so are not sent yet."""
    return max((k for word in stop_words for k in range(1, len(word)) if text.endswith(word[:k])), default=0)


def _send(completion: _Completion, held: int, entries: list[ChatCompletionTokenLogprob] | None,
          emit: Callable[[str, list | None], None] | None) -> None:
    settled = len(completion.text) - held
    text = completion.text[completion.sent:settled] if settled > completion.sent else ''
    completion.sent = max(completion.sent, settled)
    if emit is not None and (text or entries):
        emit(text, entries)


def _choice(index: int, completion: _Completion) -> Choice:
    finish = 'length' if completion.finish_reason == 'length' else 'stop'  # 'abort': the client went away
    choice = ChatCompletionResponseChoice(index, ChatMessage('assistant', completion.text), finish)
    n_content = completion.n_tokens
    if completion.entries is not None:
        choice.logprobs = ChoiceLogprobs(completion.entries)
        n_content = len(completion.entries)
    return choice, completion.n_tokens, n_content
