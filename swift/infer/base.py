"""What every inference engine shares: the ``infer`` of seed 002, streaming, prompt encoding, the context check and
the response objects. An engine adds ``generate`` (one batch of prompt ids), its adapters and its context length.
"""
import copy
import dataclasses
import queue
import threading
from abc import ABC, abstractmethod
from typing import Callable, Iterator

from ..protocol import (AdapterRequest, ChatCompletionResponse, ChatCompletionResponseChoice,
                        ChatCompletionStreamResponse, ChatCompletionStreamResponseChoice, ChatCompletionTokenLogprob,
                        ChoiceLogprobs, DeltaMessage, InferRequest, RequestConfig, UsageInfo)
from ..dataset import RowError, normalize_row
from ..template import Template
from ..template.base import Prompt
from ..utils import SwiftError
from .metrics import InferStats
from .tokens import token_bytes
from .tools import ToolUse, conversation, delta_tool_calls, tool_use, with_tool_calls

DEFAULT_MAX_TOKENS = 2048
MAX_TOP_LOGPROBS = 20  # as in OpenAI's API
LOGPROB_FLOOR = -9999.0  # what OpenAI reports for a token the sampling settings ruled out (log 0)
STREAM_THREAD = 'swift-stream'  # the thread that generates for infer(stream=True)
# (prompt index, choice index, new text, logprob entries of the tokens it completes: None without logprobs)
OnText = Callable[[int, int, str, list[ChatCompletionTokenLogprob] | None], None]
# A choice, the number of tokens it generated (usage), and how many of those make up its content
Choice = tuple[ChatCompletionResponseChoice, int, int]


class InferEngine(ABC):
    # How many batches the server may hand to generate at once: 1 for an engine that runs one batch at a time,
    # more for one that schedules requests itself (vLLM's continuous batching).
    concurrent_batches = 1

    def __init__(self, template: Template, max_batch_size: int, model_name: str):
        self.template = template
        self.tokenizer = template.tokenizer
        self.max_batch_size = max_batch_size
        self.model_name = model_name
        # Fixed by the template, so worked out once instead of re-tokenizing the stop words on every answer.
        self.stop_token_ids = template.single_token_stops()
        self._token_bytes_cache: dict[int, bytes] = {}

    @abstractmethod
    def generate(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None = None,
                 on_text: OnText | None = None, cancelled: Callable[[int], bool] | None = None
                 ) -> list[ChatCompletionResponse]:
        """Answer prompt ids in one batch, ``config.n`` choices each.

        ``on_text(prompt, choice, text, logprobs)`` gets text as soon as later tokens can no longer change it, with
        the logprob entries of the tokens that text completes: streamed entries add up to the whole answer's.
        ``cancelled(prompt)`` is polled while generating and ends that prompt's rows when true.
        """

    @property
    @abstractmethod
    def adapter_names(self) -> list[str]:
        """The adapters a request may name."""

    @property
    @abstractmethod
    def max_model_len(self) -> int | None:
        """The context length, prompt and answer together; None where the model does not say."""

    def close(self) -> None:
        """Release what the engine runs besides this process (vLLM's engine processes); nothing by default."""

    def __enter__(self) -> 'InferEngine':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def is_scorer(self) -> bool:
        """A reward model: it scores conversations instead of continuing them."""
        return False

    @property
    def task_type(self) -> str:
        """What the model computes (--task_type); engines other than PtEngine serve causal LMs."""
        return 'causal_lm'

    def infer(self, infer_requests: list[InferRequest], request_config: RequestConfig | None = None,
              metrics: list[InferStats] | None = None, *, adapter: str | None = None,
              adapter_request: AdapterRequest | None = None, template: Template | None = None
              ) -> list[ChatCompletionResponse] | Iterator[list[ChatCompletionStreamResponse | None]]:
        """ms-swift's call. One response per request; with ``request_config.stream``, a generator of lists that hold
        one entry per request: its next chunk, or None when it has nothing new. ``metrics`` (``InferStats``) see
        each finished response. ``adapter`` names a loaded adapter to answer with (None: the model as loaded), or
        ``adapter_request`` names one and where to load it from the first time. ``template`` renders the prompts
        instead of the engine's (e.g. with a checkpoint's system prompt)."""
        config = request_config or RequestConfig()
        if adapter_request is not None:
            adapter = self._loaded(adapter_request)
        self.check_adapter(adapter)
        check_logprobs(config)
        template = template or self.template
        prompts = [self.encode(request, template) for request in infer_requests]
        uses = [tool_use(request, template.agent) for request in infer_requests]
        config = self.with_tool_stops(config, template, any(uses))
        if config.stream:
            return self._stream(prompts, config, adapter, metrics or [], uses, template)
        responses = [response for batch in self._batches(prompts, config)
                     for response in self.generate(batch, config, adapter)]
        responses = [with_tool_calls(response, template.agent, use) for response, use in zip(responses, uses)]
        for metric in metrics or []:
            for response in responses:
                metric.update(response)
        return responses

    def _batches(self, prompts: list[list[int]], config: RequestConfig) -> Iterator[list[list[int]]]:
        per_batch = max(1, self.max_batch_size // config.n)  # each prompt takes n rows
        for start in range(0, len(prompts), per_batch):
            yield prompts[start:start + per_batch]

    def encode(self, request: InferRequest, template: Template | None = None) -> Prompt:
        """Prompt ids of a conversation, rendered with the chat template (the engine's, or ``template``), carrying
        the model inputs of its images where it has any, its ``tools`` written in by the agent template and, when
        ``tool_choice`` demands a call, the start of that call."""
        template = template or self.template
        use = tool_use(request, template.agent)
        if use is not None and use.prefix:  # rendered with the prompt, so it tokenizes as in training
            template = copy.copy(template)
            template.response_prefix = template.generation_prefix() + use.prefix
        messages, media = request_media(dataclasses.replace(request, messages=conversation(request)))
        return template.encode_prompt(messages, media, tools=use.tools if use else None)

    def finish(self, response: ChatCompletionResponse, request: InferRequest,
               template: Template | None = None) -> ChatCompletionResponse:
        """A whole answer to ``request`` with the tool calls in its text as ``tool_calls`` (when it offered tools)."""
        agent = (template or self.template).agent
        return with_tool_calls(response, agent, tool_use(request, agent))

    @staticmethod
    def with_tool_stops(config: RequestConfig, template: Template, tools: bool) -> RequestConfig:
        """``config`` with the agent template's stop words (react's 'Observation:') when tools are offered."""
        extra = [word for word in template.agent.stop_words if word not in config.stop] if tools else []
        return dataclasses.replace(config, stop=[*config.stop, *extra]) if extra else config

    @property
    def processor(self):
        """ms-swift's name for the tokenizer, e.g. for ``get_template(name, engine.processor)``."""
        return self.tokenizer

    def add_adapter(self, path: str, name: str | None = None) -> None:
        """Load the LoRA checkpoint at ``path`` as ``name``; by default, engines serve only what they started with."""
        raise SwiftError(f'{type(self).__name__} serves the adapters it was started with; name them at start-up')

    def _loaded(self, request: AdapterRequest) -> str:
        if request.name not in self.adapter_names:
            self.add_adapter(request.path, request.name)
        return request.name

    def encode_text(self, text: str) -> list[int]:
        """Prompt ids of raw text (text completion): no chat template, only the tokenizer's own special tokens."""
        return self.tokenizer(text)['input_ids']

    def check_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self.adapter_names:
            raise SwiftError(f'unknown adapter {adapter!r}; loaded: {", ".join(self.adapter_names) or "none"}')

    def max_new_tokens(self, prompt_length: int, max_tokens: int | None, default: int | None = None) -> int:
        """``max_tokens``, else ``default`` capped by the room the context leaves; SwiftError when it doesn't fit."""
        limit = self.max_model_len
        room = None if limit is None else limit - prompt_length
        wanted = max_tokens or default or DEFAULT_MAX_TOKENS
        if max_tokens is None and room is not None and room > 0:
            wanted = min(wanted, room)  # as in OpenAI's API, an unset max_tokens shrinks to what fits
        if room is not None and wanted > room:
            raise SwiftError(f"this model's maximum context length is {limit} tokens, but {prompt_length + wanted} "
                             f'were requested ({prompt_length} in the prompt, {wanted} to generate)')
        return wanted

    def stop_words(self, config: RequestConfig) -> list[str]:
        """The template's stop words, then the request's own; an empty one stops nothing (vLLM refuses it)."""
        return [word for word in [*self.template.stop_words, *config.stop] if word]

    def token_entry(self, token_id: int, logprob: float) -> tuple[str, float, list[int]]:
        """``(token, logprob, bytes)`` as OpenAI writes them: the token's text is its UTF-8 bytes, decoded."""
        raw = self._token_bytes_cache.get(token_id)
        if raw is None:
            raw = self._token_bytes_cache[token_id] = token_bytes(self.tokenizer, token_id)
        return raw.decode('utf-8', errors='replace'), max(logprob, LOGPROB_FLOOR), list(raw)

    def response(self, prompt: list[int], choices: list[Choice]) -> ChatCompletionResponse:
        n_completion = sum(count for _, count, _ in choices)
        usage = UsageInfo(len(prompt), n_completion, len(prompt) + n_completion)
        return ChatCompletionResponse(self.model_name, [choice for choice, _, _ in choices], usage)

    # ---- streaming (infer(stream=True)) ---------------------------------------------------------------------
    def _stream(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None,
                metrics: list[InferStats], uses: list[ToolUse | None], template: Template
                ) -> Iterator[list[ChatCompletionStreamResponse | None]]:
        """Chunks of the same ``generate`` calls the whole answers use, run in a thread, each request's ending with
        its choices' finish reasons. A consumer that stops early (closes the generator, or drops it, as gradio
        does for a closed tab) ends the generation at its next step."""
        events: queue.Queue = queue.Queue()
        abandoned = threading.Event()

        def run() -> None:
            try:
                offset = 0
                for batch in self._batches(prompts, config):
                    if abandoned.is_set():
                        break
                    on_text = lambda index, *delta: events.put(('text', offset + index, delta))  # noqa: E731
                    for index, response in enumerate(self.generate(batch, config, adapter, on_text=on_text,
                                                                   cancelled=lambda _: abandoned.is_set())):
                        events.put(('done', offset + index, response))
                    offset += len(batch)
                events.put(('end', None, None))
            except Exception as err:  # re-raised in the consumer's thread, where the caller can see it
                events.put(('error', None, err))

        threading.Thread(target=run, name=STREAM_THREAD, daemon=True).start()
        try:
            while True:
                kind, index, value = events.get()
                if kind == 'error':
                    raise value
                if kind == 'end':
                    return
                if kind == 'text':
                    choice, text, entries = value
                    yield self._one_of(len(prompts), index, self._chunk(choice, text, None, entries))
                    continue
                value = with_tool_calls(value, template.agent, uses[index])
                for metric in metrics:
                    metric.update(value)
                for choice in value.choices:
                    chunk = self._chunk(choice.index, '', choice.finish_reason)
                    chunk.choices[0].delta.tool_calls = delta_tool_calls(choice.message.tool_calls)
                    chunk.usage = value.usage
                    yield self._one_of(len(prompts), index, chunk)
        finally:
            abandoned.set()

    @staticmethod
    def _one_of(n: int, index: int, chunk: ChatCompletionStreamResponse) -> list[ChatCompletionStreamResponse | None]:
        return [chunk if i == index else None for i in range(n)]

    def _chunk(self, index: int, text: str, finish_reason: str | None,
               entries: list[ChatCompletionTokenLogprob] | None = None) -> ChatCompletionStreamResponse:
        return ChatCompletionStreamResponse(self.model_name, [stream_choice(index, text, finish_reason, entries)])


def request_media(request: InferRequest) -> tuple[list[dict], dict[str, list]]:
    """The request's messages as text with placeholders, and its media checked and read as a dataset row's are
    (paths from the working folder, URLs fetched, content parts turned into placeholders). Text-only requests
    pass unchanged."""
    # content parts, or ms-swift's <img>path</img> typed into a chat, name media inside the messages
    inline = any(isinstance(m.get('content'), list) or '<img>' in (m.get('content') or '') for m in request.messages)
    if not (request.images or request.videos or request.audios or inline):
        return request.messages, {}
    try:
        row = normalize_row({'messages': request.messages, 'images': list(request.images),
                             'videos': list(request.videos), 'audios': list(request.audios)})
    except RowError as err:
        raise SwiftError(str(err)) from None
    return row.pop('messages'), row


def check_logprobs(config: RequestConfig) -> None:
    """SwiftError for ``top_logprobs`` out of range or without ``logprobs``."""
    if config.top_logprobs is not None:
        if not config.logprobs:
            raise SwiftError('top_logprobs needs logprobs=true')
        if not 0 <= config.top_logprobs <= MAX_TOP_LOGPROBS:
            raise SwiftError(f'top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {config.top_logprobs}')


def stream_choice(index: int, text: str, finish_reason: str | None = None,
                  entries: list[ChatCompletionTokenLogprob] | None = None) -> ChatCompletionStreamResponseChoice:
    """One streamed chat choice: a text delta, with the logprob entries of its tokens when they were asked for."""
    logprobs = None if entries is None else ChoiceLogprobs(entries)
    return ChatCompletionStreamResponseChoice(index, DeltaMessage('assistant', text), finish_reason, logprobs)
