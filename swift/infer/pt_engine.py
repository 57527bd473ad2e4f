"""``PtEngine``: inference on transformers' ``generate``, batched up to ``max_batch_size`` and streamable.

One base model can carry several LoRA adapters (``add_adapter``); each call names the one to run with, and
``adapter=None`` runs the model as the engine received it (the bare base when it came without an adapter). The
base is never reloaded: switching is peft's ``set_adapter`` or ``disable_adapter``. One ``generate`` runs at a time,
so threads may share an engine.
"""
import queue
import re
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from peft import PeftModel
from transformers import PreTrainedModel, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatCompletionStreamResponse,
                        ChatCompletionStreamResponseChoice, ChatCompletionTokenLogprob, ChatMessage, ChoiceLogprobs,
                        DeltaMessage, InferRequest, RequestConfig, TopLogprob, UsageInfo)
from ..template import Template
from ..utils import SwiftError
from .base import InferEngine
from .stopping import StopWordsCriteria, truncate_at_stop

DEFAULT_MAX_TOKENS = 2048
MAX_TOP_LOGPROBS = 20  # as in OpenAI's API
LOGPROB_FLOOR = -9999.0  # what OpenAI reports for a token the sampling settings ruled out (log 0)
STREAM_THREAD = 'swift-stream'  # the thread that generates for infer(stream=True)
# (prompt index, choice index, new text, logprob entries of the tokens it completes: None without logprobs)
OnText = Callable[[int, int, str, list[ChatCompletionTokenLogprob] | None], None]


class PtEngine(InferEngine):

    def __init__(self, model: PreTrainedModel, template: Template, max_batch_size: int = 1,
                 model_name: str | None = None):
        self.model = model.eval()
        self.template = template
        self.tokenizer = template.tokenizer
        self.max_batch_size = max_batch_size
        self.model_name = model_name or getattr(model, 'model_dir', None) or 'model'
        # What adapter=None means: the adapter the model came with, or none at all.
        self._own_adapter = model.active_adapter if isinstance(model, PeftModel) else None
        self._lock = threading.Lock()
        self._token_bytes_cache: dict[int, bytes] = {}
        # Fixed by the template, so worked out once instead of re-tokenizing the stop words on every answer.
        self.stop_token_ids = template.single_token_stops()

    @classmethod
    def from_model_template(cls, model: PreTrainedModel, template: Template, max_batch_size: int = 1) -> 'PtEngine':
        """The seeds' constructor: an engine over an already loaded model and template."""
        return cls(model, template, max_batch_size=max_batch_size)

    # ---- adapters --------------------------------------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        return list(self.model.peft_config) if isinstance(self.model, PeftModel) else []

    def add_adapter(self, name: str, path: str) -> None:
        """Load the LoRA checkpoint at ``path`` next to the others, selectable as ``adapter=name``."""
        if name in self.adapter_names:
            raise SwiftError(f'adapter name {name!r} is used twice')
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        except (OSError, ValueError) as err:
            raise SwiftError(f'cannot load adapter {name!r} from {path}: {str(err).strip().splitlines()[0]}') from None
        self.model.eval()

    def _check_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self.adapter_names:
            raise SwiftError(f'unknown adapter {adapter!r}; loaded: {", ".join(self.adapter_names) or "none"}')

    @contextmanager
    def _adapter(self, adapter: str | None):
        """Run the model with ``adapter`` active; None: the model as received."""
        name = adapter or self._own_adapter
        if not isinstance(self.model, PeftModel):
            yield
        elif name is None:
            with self.model.disable_adapter():
                yield
        else:
            if self.model.active_adapter != name:
                self.model.set_adapter(name, inference_mode=True)
            yield

    # ---- public ----------------------------------------------------------------------------------------------
    @property
    def is_scorer(self) -> bool:
        """A sequence-classification model (a reward model): it scores conversations instead of continuing them."""
        model = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        return type(model).__name__.endswith('ForSequenceClassification')

    def infer(self, infer_requests: list[InferRequest], request_config: RequestConfig | None = None,
              adapter: str | None = None):
        config = request_config or RequestConfig()
        self._check_adapter(adapter)
        if self.is_scorer:  # as ms-swift serves reward models: the score is the answer's content
            return [self._score_response(request, adapter) for request in infer_requests]
        check_logprobs(config)
        if config.stream:
            return [self._stream(request, config, adapter) for request in infer_requests]
        prompts = [self.encode(request) for request in infer_requests]
        per_batch = max(1, self.max_batch_size // config.n)  # each prompt takes n rows
        responses = []
        for start in range(0, len(prompts), per_batch):
            responses += self.generate(prompts[start:start + per_batch], config, adapter)
        return responses

    def encode(self, request: InferRequest) -> list[int]:
        """Prompt ids of a conversation, rendered with the chat template."""
        return self.template.encode_prompt(request.messages)

    def score(self, request: InferRequest, adapter: str | None = None) -> float:
        """A reward model's score of the whole conversation, the final answer included."""
        return self._score_ids(self._conversation_ids(request), adapter)

    def _conversation_ids(self, request: InferRequest) -> list[int]:
        encoded = self.template.encode({'messages': request.messages})
        if encoded is None:
            raise SwiftError(f'the conversation is longer than --max_length {self.template.max_length} tokens')
        return encoded['input_ids']

    def _score_ids(self, ids: list[int], adapter: str | None) -> float:
        input_ids = torch.tensor([ids], device=self.model.device)
        with self._lock, self._adapter(adapter), torch.no_grad():
            return self.model(input_ids=input_ids).logits[0, 0].item()

    def _score_response(self, request: InferRequest, adapter: str | None) -> ChatCompletionResponse:
        ids = self._conversation_ids(request)
        content = f'{self._score_ids(ids, adapter):.6g}'
        choice = ChatCompletionResponseChoice(0, ChatMessage('assistant', content), 'stop')
        return ChatCompletionResponse(self.model_name, [choice], UsageInfo(len(ids), 0, len(ids)))

    def encode_text(self, text: str) -> list[int]:
        """Prompt ids of raw text (text completion): no chat template, only the tokenizer's own special tokens."""
        return self.tokenizer(text)['input_ids']

    @property
    def max_model_len(self) -> int | None:
        # Configs name their context length differently; one without max_position_embeddings is not checked.
        return getattr(self.model.config, 'max_position_embeddings', None)

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

    def generate(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None = None,
                 on_text: OnText | None = None, cancelled: Callable[[int], bool] | None = None
                 ) -> list[ChatCompletionResponse]:
        """Answer prompt ids in one batch, ``config.n`` choices each.

        ``on_text(prompt, choice, text, logprobs)`` gets text as soon as later tokens can no longer change it, with
        the logprob entries of the tokens that text completes: streamed entries add up to the whole answer's.
        ``cancelled(prompt)`` is polled every step and ends that prompt's rows when true.
        """
        self._check_adapter(adapter)
        check_logprobs(config)
        n = config.n
        rows = [prompt for prompt in prompts for _ in range(n)]
        inputs = self._left_padded(rows)
        prompt_length = inputs['input_ids'].shape[1]
        kwargs = self._generate_kwargs(config, prompt_length)
        if cancelled is not None:
            kwargs['stopping_criteria'].append(_Cancelled(lambda row: cancelled(row // n)))
        logprobs = None
        if config.logprobs:
            logprobs = _StepLogprobs(config.top_logprobs or 0, self._token_entry)
            kwargs['stopping_criteria'].append(logprobs)
            # generate hands stopping criteria the scores only when it is asked to return them
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        streamer = None
        if on_text is not None:
            streamer = _RowTexts(self, len(rows), self._stop_words(config), logprobs,
                                 lambda row, text, entries: on_text(row // n, row % n, text, entries))
        output = self._model_generate(adapter, config.seed, **inputs, **kwargs, streamer=streamer)
        sequences = output.sequences if config.logprobs else output
        completions = sequences[:, prompt_length:].tolist()
        choices = [self._choice(row % n, completion, config, kwargs['max_new_tokens'])
                   for row, completion in enumerate(completions)]
        if logprobs is not None:
            for row, (choice, _, n_content) in enumerate(choices):
                choice.logprobs = ChoiceLogprobs(logprobs.entries(row, 0, n_content))
        if streamer is not None:
            streamer.finish([(choice.message.content, n_content) for choice, _, n_content in choices])
        return [self._response(prompt, choices[i * n:(i + 1) * n]) for i, prompt in enumerate(prompts)]

    # ---- generation ------------------------------------------------------------------------------------------
    def _left_padded(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        longest = max(map(len, prompts))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts])
        attention_mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
        return {'input_ids': input_ids.to(self.model.device), 'attention_mask': attention_mask.to(self.model.device)}

    def _generate_kwargs(self, config: RequestConfig, prompt_length: int) -> dict:
        greedy = not config.temperature
        kwargs = {'max_new_tokens': self.max_new_tokens(prompt_length, config.max_tokens), 'do_sample': not greedy,
                  'pad_token_id': self.tokenizer.pad_token_id, 'eos_token_id': self.stop_token_ids}
        if not greedy:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if config.repetition_penalty:
            kwargs['repetition_penalty'] = config.repetition_penalty
        kwargs['stopping_criteria'] = StoppingCriteriaList(
            [StopWordsCriteria(self.tokenizer, self._stop_words(config), prompt_length)])
        return kwargs

    def _model_generate(self, adapter: str | None, seed: int | None, **kwargs) -> torch.Tensor:
        # The lock keeps the adapter choice and the seed in force for exactly this generate call.
        with self._lock, self._adapter(adapter), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            return self.model.generate(**kwargs)

    def _stop_words(self, config: RequestConfig) -> list[str]:
        """The template's stop words, then the request's own."""
        return [*self.template.stop_words, *config.stop]

    def _choice(self, index: int, completion: list[int], config: RequestConfig,
                max_new_tokens: int) -> tuple[ChatCompletionResponseChoice, int, int]:
        """One choice, the number of tokens it generated, and how many of those make up its content.

        The two counts differ by the stop token (counted in ``usage.completion_tokens``, as it was generated, but
        not part of the content), by the padding after a row finished (in neither), and by the tokens from a stop
        word on (generated, cut from the content). ``logprobs.content`` covers the content's tokens only.
        """
        stop_ids = set(self.stop_token_ids)
        ended = next((i for i, t in enumerate(completion) if t in stop_ids), None)
        tokens = completion if ended is None else completion[:ended]
        whole = self.template.decode(tokens)
        text, stopped = truncate_at_stop(whole, self._stop_words(config))
        finish = 'stop' if ended is not None or stopped or len(tokens) < max_new_tokens else 'length'
        n_tokens = len(tokens) + (ended is not None)  # the stop token was generated too
        n_content = len(tokens)
        if stopped and config.logprobs:  # the fewest tokens whose text reaches the cut, the stop word's start
            n_content = next((k for k in range(len(tokens) + 1) if self.template.decode(tokens[:k]).startswith(text)),
                             len(tokens))
        return ChatCompletionResponseChoice(index, ChatMessage('assistant', text), finish), n_tokens, n_content

    def _token_entry(self, token_id: int, logprob: float) -> tuple[str, float, list[int]]:
        """``(token, logprob, bytes)`` as OpenAI writes them: the token's text is its UTF-8 bytes, decoded."""
        raw = self._token_bytes(token_id)
        return raw.decode('utf-8', errors='replace'), max(logprob, LOGPROB_FLOOR), list(raw)

    def _token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for. One token can be part of a character, so decoding it alone is not enough."""
        raw = self._token_bytes_cache.get(token_id)
        if raw is None:
            raw = self._token_bytes_cache[token_id] = _token_bytes(self.tokenizer, token_id)
        return raw

    def _response(self, prompt: list[int], choices: list[tuple[ChatCompletionResponseChoice, int, int]]
                  ) -> ChatCompletionResponse:
        n_completion = sum(count for _, count, _ in choices)
        usage = UsageInfo(len(prompt), n_completion, len(prompt) + n_completion)
        return ChatCompletionResponse(self.model_name, [choice for choice, _, _ in choices], usage)

    # ---- streaming one request (infer(stream=True)) ----------------------------------------------------------
    def _stream(self, request: InferRequest, config: RequestConfig,
                adapter: str | None) -> Iterator[ChatCompletionStreamResponse]:
        """Chunks of the same ``generate`` the whole answers use, run in a thread, ending with each finish reason.
        A consumer that stops early (closes this iterator, or drops it, as gradio does for a closed tab) ends the
        generation at its next step."""
        prompt = self.encode(request)
        events: queue.Queue = queue.Queue()
        abandoned = threading.Event()

        def run() -> None:
            try:
                on_text = lambda _prompt, *delta: events.put(('text', delta))  # noqa: E731
                events.put(('done', self.generate([prompt], config, adapter, on_text=on_text,
                                                  cancelled=lambda _prompt: abandoned.is_set())[0]))
            except Exception as err:  # re-raised in the consumer's thread, where the caller can see it
                events.put(('error', err))

        threading.Thread(target=run, name=STREAM_THREAD, daemon=True).start()
        try:
            while True:
                kind, value = events.get()
                if kind == 'error':
                    raise value
                if kind == 'text':
                    choice, text, entries = value
                    yield self._chunk(choice, text, None, entries)
                    continue
                for choice in value.choices:
                    yield self._chunk(choice.index, '', choice.finish_reason)
                return
        finally:
            abandoned.set()

    def _chunk(self, index: int, text: str, finish_reason: str | None,
               entries: list[ChatCompletionTokenLogprob] | None = None) -> ChatCompletionStreamResponse:
        return ChatCompletionStreamResponse(self.model_name, [stream_choice(index, text, finish_reason, entries)])


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


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: each byte's stand-in character."""
    printable = [*range(ord('!'), ord('~') + 1), *range(ord('¡'), ord('¬') + 1), *range(ord('®'), ord('ÿ') + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


_BYTE_OF_CHAR = {char: byte for byte, char in _bytes_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r'<0x([0-9A-Fa-f]{2})>')


def _token_bytes(tokenizer, token_id: int) -> bytes:
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return tokenizer.decode([token_id]).encode()
    if token_id in tokenizer.all_special_ids or piece in tokenizer.get_added_vocab():
        return piece.encode()  # added tokens are stored as their text
    decoder = getattr(getattr(tokenizer, 'backend_tokenizer', None), 'decoder', None)
    if type(decoder).__name__ == 'ByteLevel' and all(char in _BYTE_OF_CHAR for char in piece):
        return bytes(_BYTE_OF_CHAR[char] for char in piece)
    if match := _BYTE_FALLBACK.fullmatch(piece):  # sentencepiece's byte fallback
        return bytes([int(match.group(1), 16)])
    return piece.replace('\u2581', ' ').encode()  # sentencepiece marks a leading space with U+2581


class _Cancelled(StoppingCriteria):
    """Ends the rows whose requester went away (a client that disconnected mid-stream)."""

    def __init__(self, is_cancelled: Callable[[int], bool]):
        self.is_cancelled = is_cancelled

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.tensor([self.is_cancelled(row) for row in range(input_ids.shape[0])], device=input_ids.device)


class _StepLogprobs(StoppingCriteria):
    """Records each step's log-probabilities as generate goes: every row's chosen token and its ``top`` most likely.

    A stopping criterion that never stops anything, because criteria run after each step's token is chosen and see
    the scores it was chosen from: the processed ones, after repetition penalty, temperature, top-k and top-p. So
    the log-probabilities are those of the sampling distribution, as OpenAI reports them; greedy decoding applies
    no processor, and they are then the model's own. A token the settings ruled out has log 0 = -inf, reported as
    OpenAI does, -9999.0, so that the JSON stays valid. Whole and streamed answers read the same records.
    """

    def __init__(self, top: int, token_entry: Callable[[int, float], tuple[str, float, list[int]]]):
        self.top = top
        self.token_entry = token_entry
        self.steps: list[tuple[list[int], list[float], list[list[float]], list[list[int]]]] = []

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        logprobs = torch.log_softmax(scores[-1].float(), dim=-1)
        chosen = input_ids[:, -1:]
        values, indices = logprobs.topk(min(self.top, logprobs.shape[-1]), dim=-1)  # sorted, most likely first
        self.steps.append((chosen[:, 0].tolist(), logprobs.gather(1, chosen)[:, 0].tolist(), values.tolist(),
                           indices.tolist()))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def entries(self, row: int, start: int, end: int) -> list[ChatCompletionTokenLogprob]:
        """The entries of ``row``'s generated tokens ``start`` to ``end``."""
        entries = []
        for token_ids, chosen, top_values, top_ids in self.steps[start:end]:
            tops = [TopLogprob(*self.token_entry(i, v)) for i, v in zip(top_ids[row], top_values[row])]
            token = self.token_entry(token_ids[row], chosen[row])
            entries.append(ChatCompletionTokenLogprob(*token, top_logprobs=tops))
        return entries


class _RowTexts(BaseStreamer):
    """Turns each generation step's batch of tokens into per-row text deltas.

    Text is held back while a later token could still change it: half of a multi-byte character, or the start of
    a stop word. With ``logprobs``, a delta carries the entries of the tokens whose text it completes. ``finish``
    sends whatever remains of each row's final answer and its entries, so the deltas add up to it exactly.
    """

    def __init__(self, engine: PtEngine, n_rows: int, stop_words: list[str], logprobs: _StepLogprobs | None,
                 emit: Callable[[int, str, list[ChatCompletionTokenLogprob] | None], None]):
        self.decode = engine.template.decode
        self.stop_ids = set(engine.stop_token_ids)
        self.stop_words = [w for w in stop_words if w]
        self.logprobs = logprobs
        self.emit = emit
        self.tokens: list[list[int]] = [[] for _ in range(n_rows)]
        self.sent = [''] * n_rows
        self.covered = [0] * n_rows  # tokens whose entries were sent
        self.ended = [False] * n_rows
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate hands over the prompt first
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if self.ended[row]:
                continue
            if token in self.stop_ids:
                self.ended[row] = True
                continue
            self.tokens[row].append(token)
            self._send(row, self._settled_text(row))

    def end(self) -> None:
        pass

    def finish(self, answers: list[tuple[str, int]]) -> None:
        """Each row's final ``(content, number of tokens it has logprob entries for)``."""
        for row, (text, n_content) in enumerate(answers):
            self._send(row, text, n_content)

    def _settled_text(self, row: int) -> str:
        text, stopped = truncate_at_stop(self.decode(self.tokens[row]), self.stop_words)
        if stopped:
            self.ended[row] = True
            return text
        text = text.rstrip('\ufffd')  # an incomplete UTF-8 sequence decodes to U+FFFD until its last byte comes
        held = max((k for w in self.stop_words for k in range(1, len(w)) if text.endswith(w[:k])), default=0)
        return text[:len(text) - held]

    def _send(self, row: int, text: str, n_covered: int | None = None) -> None:
        delta = ''
        if len(text) > len(self.sent[row]) and text.startswith(self.sent[row]):
            delta, self.sent[row] = text[len(self.sent[row]):], text
        elif n_covered is None:
            return  # no new text, so no token newly covered either
        entries = None
        if self.logprobs is not None:
            end = self._covered(row) if n_covered is None else n_covered
            entries = self.logprobs.entries(row, self.covered[row], end)
            self.covered[row] = max(end, self.covered[row])
        if delta or entries:
            self.emit(row, delta, entries)

    def _covered(self, row: int) -> int:
        """How many of the row's tokens the text sent so far holds whole. Tokens that add no text go with the next
        one, as the whole answer's entries end at the fewest tokens that reach its content (``PtEngine._choice``)."""
        tokens, sent, done = self.tokens[row], self.sent[row], self.covered[row]
        while True:
            text, more = self.decode(tokens[:done]), done + 1
            while more <= len(tokens) and self.decode(tokens[:more]) == text:
                more += 1
            if more > len(tokens) or not sent.startswith(self.decode(tokens[:more])):
                return done
            done = more
