"""``PtEngine``: inference on transformers' ``generate``, batched up to ``max_batch_size`` and streamable.

One base model can carry several LoRA adapters (``add_adapter``); each call names the one to run with, and
``adapter=None`` runs the model as the engine received it (the bare base when it came without an adapter). The
base is never reloaded: switching is peft's ``set_adapter`` or ``disable_adapter``. One ``generate`` runs at a time,
so threads may share an engine.
"""
import itertools
import json
import threading
from contextlib import contextmanager
from functools import cached_property
from typing import Callable

import torch
from peft import PeftModel
from transformers import PreTrainedModel, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..protocol import (AdapterRequest, ChatCompletionResponse, ChatCompletionResponseChoice,
                        ChatCompletionTokenLogprob, ChatMessage, ChoiceLogprobs, InferRequest, RequestConfig, TopLogprob,
                        UsageInfo)
from ..model import get_model_tokenizer
from ..model.retrieval import RETRIEVAL_TASKS
from ..template import Template, get_template
from ..template.base import Prompt
from ..template.classification import encode_for_classification
from ..template.vision import MEDIA_TENSOR_KEYS
from ..utils import SwiftError
from .base import Choice, InferEngine, OnText, check_logprobs
from .metrics import InferStats
from .retrieval import RetrievalRunner
from .seq_cls import decode_seq_cls, problem_type_of
from .stopping import StopWordsCriteria, truncate_at_stop

GREEDY_BELOW_TEMPERATURE = 1e-5


class PtEngine(InferEngine):

    def __init__(self, model: PreTrainedModel | str, template: Template | None = None, max_batch_size: int = 1,
                 model_name: str | None = None, *, torch_dtype: str | None = None, model_type: str | None = None,
                 use_hf: bool = False, task_type: str = 'causal_lm'):
        """``model``: a loaded model, or (as in ms-swift's ``PtEngine(model_id_or_path)``) a folder or hub id to
        load (``task_type`` as --task_type: embedding and rerankers too); ``template``: the model's detected
        template when None."""
        if isinstance(model, str):
            model, tokenizer = get_model_tokenizer(model, torch_dtype, model_type=model_type, use_hf=use_hf,
                                                   task_type=task_type)
            template = template or get_template(model.model_meta.template, tokenizer)
        if template is None:
            raise SwiftError('a loaded model needs its template: PtEngine.from_model_template(model, template)')
        super().__init__(template, max_batch_size, model_name or getattr(model, 'model_dir', None) or 'model')
        self.model = model.eval()
        # What adapter=None means: the adapter the model came with, or none at all.
        self._own_adapter = model.active_adapter if isinstance(model, PeftModel) else None
        self._lock = threading.Lock()
        self.reranker_use_activation = True  # --reranker_use_activation: a reranker's score is sigmoid(logit)

    @classmethod
    def from_model_template(cls, model: PreTrainedModel, template: Template, max_batch_size: int = 1) -> 'PtEngine':
        """The seeds' constructor: an engine over an already loaded model and template."""
        return cls(model, template, max_batch_size=max_batch_size)

    # ---- adapters --------------------------------------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        return list(self.model.peft_config) if isinstance(self.model, PeftModel) else []

    def add_adapter(self, path: str, name: str | None = None) -> None:
        """Load the LoRA checkpoint at ``path`` next to the others, selectable as ``adapter=name``; without a name
        (ms-swift's ``engine.add_adapter(path)``), it becomes what ``adapter=None`` answers with."""
        own = name is None
        if own:
            name = next(f'adapter{i}' for i in itertools.count() if f'adapter{i}' not in self.adapter_names)
        elif name in self.adapter_names:
            raise SwiftError(f'adapter name {name!r} is used twice')
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        except (OSError, ValueError) as err:
            raise SwiftError(f'cannot load adapter {name!r} from {path}: {str(err).strip().splitlines()[0]}') from None
        self.model.eval()
        if own:
            self._own_adapter = name

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
        return type(model).__name__.endswith('ForSequenceClassification') and self.task_type not in RETRIEVAL_TASKS

    @property
    def task_type(self) -> str:
        # a model loaded by swift records its --task_type; one loaded elsewhere is a causal LM or a classifier
        return getattr(self.model, 'task_type', 'causal_lm')

    @cached_property
    def retrieval(self) -> RetrievalRunner:
        """Embeddings and reranker scores (``--task_type embedding|reranker|generative_reranker``)."""
        if self.task_type not in RETRIEVAL_TASKS:
            raise SwiftError(f'{self.model_name} is a {self.task_type} model, not an embedding or reranker model')
        return RetrievalRunner(self, self.task_type, self.reranker_use_activation)

    def infer(self, infer_requests: list[InferRequest], request_config: RequestConfig | None = None,
              metrics: list[InferStats] | None = None, *, adapter: str | None = None,
              adapter_request: AdapterRequest | None = None, template: Template | None = None):
        if self.task_type in RETRIEVAL_TASKS:  # as ms-swift: EmbeddingResponse, or the score as the content
            adapter = self._loaded(adapter_request) if adapter_request is not None else adapter
            self.check_adapter(adapter)
            return self.retrieval.responses(infer_requests, self.model_name, adapter)
        if not self.is_scorer:
            return super().infer(infer_requests, request_config, metrics, adapter=adapter,
                                 adapter_request=adapter_request, template=template)
        # as ms-swift serves reward models: the score is the answer's content
        adapter = self._loaded(adapter_request) if adapter_request is not None else adapter
        self.check_adapter(adapter)
        return [self._score_response(request, adapter) for request in infer_requests]

    def score(self, request: InferRequest, adapter: str | None = None) -> float:
        """A reward model's score of the whole conversation, the final answer included."""
        return self._score_ids(self._conversation_ids(request), adapter)

    def _conversation_ids(self, request: InferRequest) -> list[int]:
        ids = encode_for_classification(self.template, request.messages)
        if ids is None:
            raise SwiftError(f'the conversation is longer than --max_length {self.template.max_length} tokens')
        limit = self.max_model_len  # past it, the position embeddings run out mid-forward
        if limit is not None and len(ids) > limit:
            raise SwiftError(f"this model's maximum context length is {limit} tokens, but the conversation has "
                             f"{len(ids)}")
        return ids

    def _score_ids(self, ids: list[int], adapter: str | None) -> float:
        return self._logits(ids, adapter)[0].item()

    def _logits(self, ids: list[int], adapter: str | None) -> torch.Tensor:
        input_ids = torch.tensor([ids], device=self.model.device)
        with self._lock, self._adapter(adapter), torch.no_grad():
            return self.model(input_ids=input_ids).logits[0]

    @property
    def problem_type(self) -> str:
        """A classifier's problem type (single-label, multi-label, regression; a reward model's is regression)."""
        return problem_type_of(self.model.config)

    def classify(self, request: InferRequest, adapter: str | None = None, top_logprobs: int = 20) -> tuple:
        """``(prediction, logprobs)`` of a sequence classifier, as ms-swift decodes them (``infer/seq_cls.py``)."""
        return decode_seq_cls(self._logits(self._conversation_ids(request), adapter), self.problem_type, top_logprobs)

    def _score_response(self, request: InferRequest, adapter: str | None) -> ChatCompletionResponse:
        """A reward model's score, or a classifier's prediction (JSON text: 1, [0, 2], 0.75) with the classes'
        log-probabilities in ``logprobs``, as ms-swift answers a seq_cls model's chat request."""
        ids = self._conversation_ids(request)
        pred, logprobs = decode_seq_cls(self._logits(ids, adapter), self.problem_type)
        content = f'{pred:.6g}' if isinstance(pred, float) else json.dumps(pred)
        choice = ChatCompletionResponseChoice(0, ChatMessage('assistant', content), 'stop', logprobs)
        return ChatCompletionResponse(self.model_name, [choice], UsageInfo(len(ids), 0, len(ids)))

    @property
    def max_model_len(self) -> int | None:
        # Configs name their context length differently; one without max_position_embeddings is not checked. A
        # multimodal config keeps it in its language model's part.
        return getattr(self.model.config.get_text_config(), 'max_position_embeddings', None)

    def generate(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None = None,
                 on_text: OnText | None = None, cancelled: Callable[[int], bool] | None = None
                 ) -> list[ChatCompletionResponse]:
        self.check_adapter(adapter)
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
            logprobs = _StepLogprobs(config.top_logprobs or 0, self.token_entry)
            kwargs['stopping_criteria'].append(logprobs)
            # generate hands stopping criteria the scores only when it is asked to return them
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        streamer = None
        if on_text is not None:
            streamer = _RowTexts(self, len(rows), self.stop_words(config), logprobs,
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
        return [self.response(prompt, choices[i * n:(i + 1) * n]) for i, prompt in enumerate(prompts)]

    # ---- continuous batching (the server's worker) -------------------------------------------------------------
    def running_batch(self, max_rows: int):
        """The server's continuous batch (``continuous.RunningBatch``); None for a model it cannot serve (a
        scorer, an embedding model, a cache that is not a plain key/value cache), which keeps static batches."""
        from .continuous import RunningBatch, plain_kv_cache
        if self.is_scorer or self.task_type in RETRIEVAL_TASKS or not plain_kv_cache(self.model):
            return None
        return RunningBatch(self, max_rows)

    def can_join(self, prompt: list[int], config: RequestConfig, adapter: str | None) -> bool:
        """Whether a request may run in the continuous batch: not seeded (its sample must not depend on the
        others'), text only, with a known adapter. The others run on ``generate``."""
        if config.seed is not None or (isinstance(prompt, Prompt) and prompt.media):
            return False
        try:  # a request generate refuses is refused there, with generate's message
            check_logprobs(config)
            self.check_adapter(adapter)
            self.max_new_tokens(len(prompt), config.max_tokens)
        except SwiftError:
            return False
        return True

    # ---- generation ------------------------------------------------------------------------------------------
    def _left_padded(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        longest = max(map(len, prompts))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts])
        attention_mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
        batch = {'input_ids': input_ids, 'attention_mask': attention_mask, **_media_batch(prompts, longest)}
        return {key: value.to(self.model.device) for key, value in batch.items()}

    def _generate_kwargs(self, config: RequestConfig, prompt_length: int) -> dict:
        # As vLLM does: a temperature this close to 0 is greedy; dividing the logits by it would overflow them
        greedy = not config.temperature or config.temperature < GREEDY_BELOW_TEMPERATURE
        kwargs = {'max_new_tokens': self.max_new_tokens(prompt_length, config.max_tokens), 'do_sample': not greedy,
                  'pad_token_id': self.tokenizer.pad_token_id, 'eos_token_id': self.stop_token_ids}
        if not greedy:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if config.repetition_penalty:
            kwargs['repetition_penalty'] = config.repetition_penalty
        kwargs['stopping_criteria'] = StoppingCriteriaList(
            [StopWordsCriteria(self.tokenizer, self.stop_words(config), prompt_length)])
        return kwargs

    def _model_generate(self, adapter: str | None, seed: int | None, **kwargs) -> torch.Tensor:
        # The lock keeps the adapter choice and the seed in force for exactly this generate call.
        with self._lock, self._adapter(adapter), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            return self.model.generate(**kwargs)

    def _choice(self, index: int, completion: list[int], config: RequestConfig,
                max_new_tokens: int) -> Choice:
        """One choice, the number of tokens it generated, and how many of those make up its content.

        The two counts differ by the stop token (counted in ``usage.completion_tokens``, as it was generated, but
        not part of the content), by the padding after a row finished (in neither), and by the tokens from a stop
        word on (generated, cut from the content). ``logprobs.content`` covers the content's tokens only.
        """
        stop_ids = set(self.stop_token_ids)
        ended = next((i for i, t in enumerate(completion) if t in stop_ids), None)
        tokens = completion if ended is None else completion[:ended]
        whole = self.template.decode(tokens)
        text, stopped = truncate_at_stop(whole, self.stop_words(config))
        finish = 'stop' if ended is not None or stopped or len(tokens) < max_new_tokens else 'length'
        n_tokens = len(tokens) + (ended is not None)  # the stop token was generated too
        n_content = len(tokens)
        if stopped and config.logprobs:  # the fewest tokens whose text reaches the cut, the stop word's start
            n_content = next((k for k in range(len(tokens) + 1) if self.template.decode(tokens[:k]).startswith(text)),
                             len(tokens))
        return ChatCompletionResponseChoice(index, ChatMessage('assistant', text), finish), n_tokens, n_content

def _media_batch(prompts: list[list[int]], longest: int) -> dict[str, torch.Tensor]:
    """The media inputs of left-padded prompts: per-token lists padded on the left like the ids, the processor's
    tensors concatenated row by row (a prompt answered n times appears n times)."""
    rows = [prompt.media for prompt in prompts if isinstance(prompt, Prompt) and prompt.media]
    if not rows:
        return {}
    if len(rows) != len(prompts):  # a batch mixing prompts with and without: the text-only ones have no types
        rows = [prompt.media if isinstance(prompt, Prompt) and prompt.media else
                {'mm_token_type_ids': [0] * len(prompt)} for prompt in prompts]
    batch = {key: torch.cat([torch.as_tensor(row[key]) for row in rows if key in row])
             for key in MEDIA_TENSOR_KEYS if any(key in row for row in rows)}
    batch['mm_token_type_ids'] = torch.tensor([[0] * (longest - len(row['mm_token_type_ids'])) + row['mm_token_type_ids']
                                               for row in rows])
    return batch


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
        self.stop_words = stop_words
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
