"""Continuous (iteration-level) batching for ``PtEngine``: requests join the running batch between decode steps.

The server's worker keeps one ``RunningBatch``. Each iteration it admits waiting requests (``add``: one prefill
forward of their prompts, whose key/value cache is then left-padded to the running cache's length and stacked under
it), then ``step`` picks every row's next token, streams text, ends the rows that reached a stop, and runs one
decode forward for the rows still going. A request that ends leaves the batch at once, so the next waiting one does
not wait for the slowest answer of a static batch, and the per-step work is a plain forward and an argmax instead of
``generate``'s machinery.

Every row carries its own positions (counted from its first real token) and an attention mask that hides its
left padding, so a row's tokens are computed as they would be alone: greedy answers equal one-at-a-time ones. The
rows of a batch share the adapter and the sampling settings (``join_key``); ``max_tokens``, stop words, ``n``,
streaming and logprobs are per request. Seeded and multimodal requests, and models whose cache is not a plain
per-layer key/value cache (sliding windows, linear attention), stay on ``generate`` (``PtEngine.can_join``).
"""
import inspect
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from .pt_engine import GREEDY_BELOW_TEMPERATURE, _RowTexts, _StepLogprobs


def join_key(job) -> tuple:
    """What the rows of one running batch must share: the adapter and the settings that shape the next-token
    distribution (one set of logits processors serves the whole batch)."""
    config = job.config
    greedy = not config.temperature or config.temperature < GREEDY_BELOW_TEMPERATURE
    sampling = None if greedy else (config.temperature, config.top_p, config.top_k)
    return job.adapter, sampling, config.repetition_penalty or None


@dataclass(eq=False)
class _Entry:
    """One request in the batch: its ``n`` rows are consecutive and leave the batch together."""
    job: object
    max_new: int
    stop_words: list[str]
    tokens: list[list[int]]
    done: list[bool]
    logprobs: _StepLogprobs | None = None
    streamer: _RowTexts | None = None
    history: list[list[int]] = field(default_factory=list)  # prompt and answer, for the repetition penalty

    @property
    def n(self) -> int:
        return len(self.tokens)


class RunningBatch:

    def __init__(self, engine, max_rows: int):
        self.engine = engine
        self.model = engine.model
        self.max_rows = max(1, max_rows)
        self.stop_ids = set(engine.stop_token_ids)
        self.entries: list[_Entry] = []
        self.key = None
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cache length + pending token]: 0 on left padding
        self.positions: torch.Tensor | None = None  # [rows]: the position of each row's next token
        self.logits: torch.Tensor | None = None  # [rows, vocab]: the scores each row's next token is chosen from
        forward = (self.model.get_base_model() if hasattr(self.model, 'get_base_model') else self.model).forward
        parameters = inspect.signature(forward).parameters
        self._cache_arg = 'cache' if 'cache' in parameters else 'past_key_values'
        # the last position's logits only, where the model's forward offers it (every transformers model does)
        self._last_only = {'logits_to_keep': 1} if 'logits_to_keep' in parameters else {}

    # ---- admission -------------------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return sum(entry.n for entry in self.entries)

    def fits(self, job, joining: list) -> bool:
        """Whether ``job`` may join now, after ``joining``: same key, and room for its rows (a request with more
        choices than ``max_rows`` runs alone)."""
        key = self.key if self.entries else (join_key(joining[0]) if joining else None)
        if key is not None and join_key(job) != key:
            return False
        taken = self.rows + sum(other.config.n for other in joining)
        return taken == 0 or taken + job.config.n <= self.max_rows

    def add(self, jobs: list) -> None:
        """Prefill ``jobs``' prompts in one forward and stack their cache under the running one."""
        entries = [self._entry(job) for job in jobs]
        rows = [job.prompt for job in jobs for _ in range(job.config.n)]
        longest = max(map(len, rows))
        pad = self.engine.tokenizer.pad_token_id or 0
        device = self.model.device
        input_ids = torch.tensor([[pad] * (longest - len(r)) + list(r) for r in rows], device=device)
        mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = _new_cache()
        logits = self._forward(jobs[0].adapter, input_ids, mask, positions, cache)
        if not self.entries:
            self.key = join_key(jobs[0])
            self.cache, self.mask, self.logits = cache, mask, logits
            self.positions = positions[:, -1] + 1
        else:
            self._stack(cache, mask, logits, positions[:, -1] + 1)
        self.entries.extend(entries)

    def _entry(self, job) -> _Entry:
        config, n = job.config, job.config.n
        stop_words = self.engine.stop_words(config)
        entry = _Entry(job, self.engine.max_new_tokens(len(job.prompt), config.max_tokens), stop_words,
                       [[] for _ in range(n)], [False] * n, history=[list(job.prompt) for _ in range(n)])
        if config.logprobs:
            entry.logprobs = _StepLogprobs(config.top_logprobs or 0, self.engine.token_entry)
        if config.stream:
            entry.streamer = _RowTexts(self.engine, n, stop_words, entry.logprobs,
                                       lambda row, text, entries: job.send('text', row, text, entries))
            entry.streamer.prompt_seen = True  # this loop hands it generated tokens only
        return entry

    def _stack(self, cache: DynamicCache, mask: torch.Tensor, logits: torch.Tensor, positions: torch.Tensor):
        """Left-pad the shorter of the running and the new cache to the other's length, then stack them."""
        old, new = self.mask.shape[1], mask.shape[1]
        for mine, theirs in zip(self.cache.layers, cache.layers):
            for name in ('keys', 'values'):
                a, b = getattr(mine, name), getattr(theirs, name)
                a, b = _left_pad(a, new - old, -2), _left_pad(b, old - new, -2)
                setattr(mine, name, torch.cat([a, b]))
        self.mask = torch.cat([_left_pad(self.mask, new - old, 1), _left_pad(mask, old - new, 1)])
        self.logits = torch.cat([self.logits, logits])
        self.positions = torch.cat([self.positions, positions])

    # ---- decoding --------------------------------------------------------------------------------------------
    def step(self) -> list[tuple[object, object]]:
        """Choose each row's next token, end the rows that stop, and compute the next scores of the rest; the
        ``(job, response)`` of every request that ended."""
        scores = self._processed(self.logits)
        chosen = self._choose(scores)
        chosen_list = chosen.tolist()
        spans, row = [], 0
        for entry in self.entries:
            spans.append((entry, row, self._append(entry, chosen[row:row + entry.n], chosen_list[row:row + entry.n],
                                                   scores[row:row + entry.n])))
            row += entry.n
        tails = self._tails(spans)
        for entry, first, live in spans:
            self._check(entry, live, chosen_list[first:first + entry.n], tails)
        finished = [entry for entry in self.entries if all(entry.done)]
        responses = [(entry.job, self._response(entry)) for entry in finished]
        if finished:
            self._drop(finished, chosen)
        else:
            self._decode(chosen)
        return responses

    def _append(self, entry: _Entry, chosen: torch.Tensor, tokens: list[int], scores: torch.Tensor) -> list[int]:
        """Record the entry's new tokens (and their logprobs, and stream them); its rows still going."""
        if entry.logprobs is not None:
            entry.logprobs(chosen[:, None], (scores,))
        live = [row for row in range(entry.n) if not entry.done[row]]
        for row in live:
            entry.tokens[row].append(tokens[row])
            entry.history[row].append(tokens[row])
        if entry.streamer is not None:
            entry.streamer.put(torch.tensor(tokens))
        return live

    def _check(self, entry: _Entry, live: list[int], tokens: list[int], tails: dict) -> None:
        """End the rows that generated a stop token or a stop word, reached max_tokens, or whose client left."""
        cancelled = entry.job.cancelled
        for row in live:
            tail = tails.get((id(entry), row), '')
            if (tokens[row] in self.stop_ids or len(entry.tokens[row]) >= entry.max_new or cancelled
                    or any(word in tail for word in entry.stop_words)):
                entry.done[row] = True
                if entry.streamer is not None:
                    entry.streamer.ended[row] = True

    def _tails(self, spans: list, window: int = 16) -> dict[tuple[int, int], str]:
        """The text of each going row's last ``window`` tokens, where a stop word would show (as
        ``StopWordsCriteria`` looks), decoded in one call for the whole batch."""
        keys = [(id(entry), row) for entry, _, live in spans if entry.stop_words for row in live]
        if not keys:
            return {}
        by_id = {id(entry): entry for entry, _, _ in spans}
        texts = self.engine.tokenizer.batch_decode([by_id[key[0]].tokens[key[1]][-window:] for key in keys],
                                                   skip_special_tokens=False)
        return dict(zip(keys, texts))

    def _response(self, entry: _Entry):
        config = entry.job.config
        choices = [self.engine._choice(i, tokens, config, entry.max_new) for i, tokens in enumerate(entry.tokens)]
        if entry.logprobs is not None:
            from ..protocol import ChoiceLogprobs
            for row, (choice, _, n_content) in enumerate(choices):
                choice.logprobs = ChoiceLogprobs(entry.logprobs.entries(row, 0, n_content))
        if entry.streamer is not None:
            entry.streamer.finish([(choice.message.content, n_content) for choice, _, n_content in choices])
        return self.engine.response(entry.job.prompt, choices)

    def _drop(self, finished: list[_Entry], chosen: torch.Tensor) -> None:
        """Remove the ended requests' rows, trim padding no remaining row needs, and decode the rest."""
        keep, row = [], 0
        for entry in self.entries:
            if entry not in finished:
                keep.extend(range(row, row + entry.n))
            row += entry.n
        self.entries = [entry for entry in self.entries if entry not in finished]
        if not self.entries:
            self.cache = self.mask = self.positions = self.logits = None
            self.key = None
            return
        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        start = int(mask.any(0).int().argmax())  # the first column some remaining row attends to
        self.mask = mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]
        self.positions = self.positions[index]
        self._decode(chosen[index])

    def _decode(self, chosen: torch.Tensor) -> None:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        self.logits = self._forward(self.key[0], chosen[:, None], self.mask, self.positions[:, None], self.cache)
        self.positions = self.positions + 1

    def _forward(self, adapter, input_ids, mask, positions, cache) -> torch.Tensor:
        engine = self.engine
        with engine._lock, engine._adapter(adapter), torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             **self._last_only, **{self._cache_arg: cache})
        return out.logits[:, -1].float()

    # ---- choosing tokens -------------------------------------------------------------------------------------
    def _processed(self, logits: torch.Tensor) -> torch.Tensor:
        """The scores tokens are chosen from, after the processors ``generate`` would apply, in its order."""
        _, sampling, penalty = self.key
        if penalty is not None:
            histories = [history for entry in self.entries for history in entry.history]
            longest = max(map(len, histories))
            # padded with each row's own first token: padding adds no token the row has not seen
            ids = torch.tensor([h + [h[0]] * (longest - len(h)) for h in histories], device=logits.device)
            logits = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits)
        if sampling is None:
            return logits
        temperature, top_p, top_k = sampling
        logits = TemperatureLogitsWarper(temperature)(None, logits)
        if top_k:
            logits = TopKLogitsWarper(top_k)(None, logits)
        if top_p is not None and top_p < 1.0:
            logits = TopPLogitsWarper(top_p)(None, logits)
        return logits

    def _choose(self, scores: torch.Tensor) -> torch.Tensor:
        if self.key[1] is None:
            return scores.argmax(-1)
        return torch.multinomial(torch.softmax(scores, dim=-1), 1)[:, 0]

    def fail(self, err: Exception) -> None:
        """A failed forward fails every request in the batch, never the worker."""
        for entry in self.entries:
            entry.job.send('error', err)
        self.entries, self.key = [], None
        self.cache = self.mask = self.positions = self.logits = None


class _GrowingLayer(DynamicLayer):
    """A key/value cache layer whose tensors are views of a buffer with room to grow: a decode step writes its
    token in place, where ``DynamicLayer`` copies the whole cache into a new tensor at every step. The room is a
    quarter of the length (at least 64 tokens), so the cache takes at most 1.25 times the memory it needs. Stacking
    or dropping rows replaces ``keys`` and ``values`` with new tensors; the next update moves them into a buffer."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
            return self.keys, self.values
        length, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
        buffers = getattr(self, '_buffers', None)
        if buffers is None or buffers[0].data_ptr() != self.keys.data_ptr() or end > buffers[0].shape[-2] \
                or buffers[0].shape[0] != self.keys.shape[0]:
            buffers = self._buffers = tuple(self._regrow(t, end + max(end // 4, 64)) for t in (self.keys, self.values))
        buffers[0][:, :, length:end] = key_states
        buffers[1][:, :, length:end] = value_states
        self.keys, self.values = buffers[0][:, :, :end], buffers[1][:, :, :end]
        return self.keys, self.values

    @staticmethod
    def _regrow(tensor: torch.Tensor, capacity: int) -> torch.Tensor:
        buffer = tensor.new_empty(*tensor.shape[:2], capacity, tensor.shape[-1])
        buffer[:, :, :tensor.shape[-2]] = tensor
        return buffer


def _new_cache() -> DynamicCache:
    cache = DynamicCache()
    cache.layer_class_to_replicate = _GrowingLayer
    return cache


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    if width <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def plain_kv_cache(model) -> bool:
    """Whether ``model``'s generation cache is one growing key/value tensor per layer, which rows can be stacked
    into and dropped from: not a sliding-window, hybrid or linear-attention cache, not a multimodal model (whose
    positions are not a plain count)."""
    config = model.config
    if config.get_text_config() is not config:
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:  # noqa: BLE001  a config the cache cannot read: keep such models on generate
        return False
    return all(type(layer) is DynamicLayer for layer in layers)
