"""``VllmEngine``: the engine interface on vLLM's ``AsyncLLM``, for ``--infer_backend vllm``.

vLLM schedules requests itself (continuous batching), so each prompt of a batch is one vLLM request and the server
hands the engine several batches at once (``concurrent_batches``). ``AsyncLLM`` lives on an asyncio loop in a thread
of its own; ``generate`` is called from any thread and waits for its requests there. LoRA adapters are vLLM LoRA
requests on the one base model: each ``--adapters name=path``, and a bare checkpoint as what ``adapter=None`` runs.
Answers are streamed out of vLLM as deltas, so whole and streamed answers come from the same requests.
"""
import asyncio
import itertools
import json
import os
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Callable

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.lora.request import LoRARequest
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from ..protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatCompletionTokenLogprob,
                        ChatMessage, ChoiceLogprobs, RequestConfig, TopLogprob)
from ..model import get_model_folder
from ..template import Template, get_template
from ..utils import SwiftError
from ..utils.packages import vllm_memory_utilization
from .arguments import VllmEngineArguments
from .base import Choice, OnText, check_logprobs
from .loop_engine import LoopEngine, engine_dtype, flag_group

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
DEFAULT_ADAPTER = 'default'  # vLLM's name for the bare --adapters checkpoint


@dataclass
class _Completion:
    """One choice as its deltas arrive; ``entries`` is None when no logprobs were asked for."""
    entries: list[ChatCompletionTokenLogprob] | None
    text: str = ''
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None


class VllmEngine(LoopEngine):

    def __init__(self, model: str, template: Template | None = None, settings: VllmEngineArguments | None = None, *,
                 torch_dtype=None, enable_lora: bool = False, max_loras: int = 1, trust_remote_code: bool = False,
                 seed: int = 0, adapters: dict[str, str] | None = None, default_adapter: str | None = None,
                 max_batch_size: int | None = None, model_name: str | None = None, **flags):
        """``model``: a model folder or hub id, with ``template`` its template (the detected one when None).
        ``settings``: the ``--vllm_*`` flags; ``flags`` set single ones, by flag name or by ms-swift's keyword, as in
        ``VllmEngine(model, max_model_len=8192)``. ``torch_dtype``: None for the model's own (float32 on a CPU, as
        swift loads models there). ``adapters``: name to LoRA checkpoint, chosen per request; ``default_adapter``:
        the checkpoint that ``adapter=None`` runs with. vLLM sizes its LoRA slots at start-up, so every adapter is
        named here, or ``enable_lora`` leaves room for ``max_loras`` added later (``add_adapter``,
        ``adapter_request``). ``max_batch_size``: rows handed to vLLM at once, ``vllm_max_num_seqs`` when None."""
        settings = flag_group(VllmEngineArguments, settings, flags, 'VllmEngine')
        if template is None:
            model, tokenizer, meta = get_model_folder(model)
            template = get_template(meta.template, tokenizer)
        named = dict(adapters or {})
        if default_adapter is not None:
            named[DEFAULT_ADAPTER] = default_adapter
        lora_rank = _slot_rank(max([settings.vllm_max_lora_rank,
                                    *(_lora_rank(name, path) for name, path in named.items())]))
        lora_enabled = bool(named) or enable_lora
        engine_args = AsyncEngineArgs(**{**dict(
            model=model, dtype=engine_dtype(torch_dtype, model),
            gpu_memory_utilization=vllm_memory_utilization(settings.vllm_gpu_memory_utilization),
            tensor_parallel_size=settings.vllm_tensor_parallel_size, max_num_seqs=settings.vllm_max_num_seqs,
            max_model_len=settings.vllm_max_model_len, enforce_eager=settings.vllm_enforce_eager,
            enable_prefix_caching=settings.vllm_enable_prefix_caching, trust_remote_code=trust_remote_code,
            seed=seed, enable_lora=lora_enabled, max_loras=max(max_loras, len(named)), max_lora_rank=lora_rank,
            # OpenAI's logprobs are those of the distribution sampled from, as PtEngine reports them.
            logprobs_mode='processed_logprobs'), **settings.engine_options()})
        max_batch_size = max_batch_size or settings.vllm_max_num_seqs
        super().__init__(template, max_batch_size, model_name or model, 'swift-vllm')  # starts the loop thread
        self._ids = itertools.count(1)
        self._loras = {name: LoRARequest(name, next(self._ids), path) for name, path in named.items()}
        self._lora_enabled, self._lora_rank = lora_enabled, lora_rank
        try:
            self.engine = self._wait(self._start(engine_args))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _start(engine_args: AsyncEngineArgs) -> AsyncLLM:
        try:
            return AsyncLLM.from_engine_args(engine_args)  # on the loop, where its output handler will run
        except ValueError as err:  # pydantic's ValidationError among them: a setting vLLM refuses for this model
            raise SwiftError(f'vLLM refused the settings: {_reason(err)}') from None
        except RuntimeError as err:  # its engine process failed; that process logged why just above
            raise SwiftError(f'vLLM could not start: {str(err).splitlines()[0]} (its log above says why)') from None

    def _shutdown(self) -> None:
        self._wait(self._shutdown_on_loop())

    async def _shutdown_on_loop(self) -> None:
        self.engine.shutdown()
        del self.engine  # AsyncLLM.__del__ shuts down again: now, rather than at interpreter exit, when it fails

    @property
    def adapter_names(self) -> list[str]:
        return [name for name in self._loras if name != DEFAULT_ADAPTER]

    def add_adapter(self, path: str, name: str | None = None) -> None:
        """Serve the LoRA checkpoint at ``path`` as ``name`` (None: what ``adapter=None`` answers with). vLLM loads
        it on its first request, into the LoRA room the engine started with."""
        name = name or DEFAULT_ADAPTER
        if not self._lora_enabled:
            raise SwiftError('this VllmEngine started without LoRA: start it with enable_lora=True to add adapters')
        if name in self._loras:
            raise SwiftError(f'adapter name {name!r} is used twice')
        if (rank := _lora_rank(name, path)) > self._lora_rank:
            raise SwiftError(f'adapter {name!r} has rank {rank}, above the {self._lora_rank} this engine started '
                             'with (max_lora_rank)')
        self._loras[name] = LoRARequest(name, next(self._ids), path)

    @property
    def max_model_len(self) -> int | None:
        return self.engine.model_config.max_model_len

    def generate(self, prompts: list[list[int]], config: RequestConfig, adapter: str | None = None,
                 on_text: OnText | None = None, cancelled: Callable[[int], bool] | None = None
                 ) -> list[ChatCompletionResponse]:
        self.check_adapter(adapter)
        check_logprobs(config)
        lora = self._loras.get(adapter or DEFAULT_ADAPTER)
        params = [self._sampling_params(config, len(prompt)) for prompt in prompts]  # context errors before any run

        completions = self._wait(self._all_or_none([
            self._request(index, prompt, params[index], lora, on_text, cancelled)
            for index, prompt in enumerate(prompts)]))
        return [self.response(prompt, [self._choice(i, c) for i, c in enumerate(choices)])
                for prompt, choices in zip(prompts, completions)]

    def _sampling_params(self, config: RequestConfig, prompt_length: int) -> SamplingParams:
        greedy = not config.temperature
        return SamplingParams(
            n=config.n, max_tokens=self.max_new_tokens(prompt_length, config.max_tokens),
            temperature=0.0 if greedy else config.temperature, top_p=1.0 if greedy else config.top_p or 1.0,
            top_k=0 if greedy else config.top_k or 0, repetition_penalty=config.repetition_penalty or 1.0,
            seed=config.seed, stop=self.stop_words(config) or None, stop_token_ids=self.stop_token_ids,
            logprobs=(config.top_logprobs or 0) if config.logprobs else None,
            output_kind=RequestOutputKind.DELTA)

    async def _request(self, index: int, prompt: list[int], params: SamplingParams, lora: LoRARequest | None,
                       on_text: OnText | None, cancelled: Callable[[int], bool] | None) -> list[_Completion]:
        """Run one prompt's ``n`` choices, passing their deltas to ``on_text``; aborted when ``cancelled``."""
        request_id = uuid.uuid4().hex
        completions = [_Completion(None if params.logprobs is None else []) for _ in range(params.n)]
        # vLLM's renderer turns our ids into its engine input (vLLM deprecates handing it raw prompts)
        engine_input, = await self.engine.renderer.render_cmpl_async([TokensPrompt(prompt_token_ids=prompt)])
        watcher = None
        if cancelled is not None:
            watcher = asyncio.create_task(self._abort_when(lambda: cancelled(index),
                                                           lambda: self.engine.abort(request_id)))
        try:
            # closing vLLM's generator aborts its request: for a requester that left before the watcher's first look
            async with aclosing(self.engine.generate(engine_input, params, request_id, lora_request=lora)) as outputs:
                async for output in outputs:
                    for delta in output.outputs:
                        entries = self._add(completions[delta.index], delta, params.logprobs)
                        if on_text is not None and (delta.text or entries):
                            on_text(index, delta.index, delta.text, entries)
                    if cancelled is not None and cancelled(index):
                        break
        finally:
            if watcher is not None:
                watcher.cancel()
        return completions

    def _add(self, completion: _Completion, delta, top: int | None) -> list[ChatCompletionTokenLogprob] | None:
        """Add one delta to its choice; returns the logprob entries of its content tokens (None without logprobs).
        A stop token ends the answer without being part of it, as in PtEngine: counted in usage, no entry."""
        completion.text += delta.text
        completion.token_ids += delta.token_ids
        completion.finish_reason = delta.finish_reason or completion.finish_reason
        if completion.entries is None:
            return None
        tokens, positions = list(delta.token_ids), list(delta.logprobs or [])
        if tokens and tokens[-1] in self.stop_token_ids:
            tokens, positions = tokens[:-1], positions[:-1]
        entries = [self._entry(token, position, top) for token, position in zip(tokens, positions)]
        completion.entries += entries
        return entries

    def _entry(self, token_id: int, position: dict, top: int) -> ChatCompletionTokenLogprob:
        """A token's entry. vLLM's position holds the ``top`` most likely tokens, with their ranks, and the sampled
        one, which may be outside them."""
        ranked = sorted((logprob.rank, token, logprob.logprob) for token, logprob in position.items())
        tops = [TopLogprob(*self.token_entry(token, value)) for rank, token, value in ranked if rank <= top]
        return ChatCompletionTokenLogprob(*self.token_entry(token_id, position[token_id].logprob), top_logprobs=tops)

    @staticmethod
    def _choice(index: int, completion: _Completion) -> Choice:
        finish = 'length' if completion.finish_reason == 'length' else 'stop'  # 'abort': the client went away
        choice = ChatCompletionResponseChoice(index, ChatMessage('assistant', completion.text), finish)
        n_content = len(completion.token_ids)
        if completion.entries is not None:
            choice.logprobs = ChoiceLogprobs(completion.entries)
            n_content = len(completion.entries)
        return choice, len(completion.token_ids), n_content


def _reason(err: ValueError) -> str:
    """The first reason of a (pydantic) ValueError, without pydantic's preamble."""
    errors = getattr(err, 'errors', None)
    message = errors()[0]['msg'] if callable(errors) else str(err)
    return message.removeprefix('Value error, ').strip().splitlines()[0]


def _lora_rank(name: str, path: str) -> int:
    """The rank of the LoRA checkpoint at ``path``; SwiftError for anything vLLM cannot serve."""
    config_path = os.path.join(path, 'adapter_config.json')
    if not os.path.isfile(config_path):
        raise SwiftError(f'adapter {name!r}: {path} has no adapter_config.json; --infer_backend vllm serves LoRA '
                         'adapters (merge other tuners first: swift export --merge_lora true)')
    with open(config_path, encoding='utf-8') as f:
        config = json.load(f)
    if config.get('peft_type') != 'LORA' or config.get('use_dora'):
        kind = 'DoRA' if config.get('use_dora') else config.get('peft_type')
        raise SwiftError(f'adapter {name!r} at {path} is {kind}; vLLM serves plain LoRA: merge it first '
                         '(swift export --merge_lora true) or use --infer_backend pt')
    return max([config.get('r') or 8, *(config.get('rank_pattern') or {}).values()])


def _slot_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds ``rank``."""
    slot = next((r for r in LORA_RANKS if r >= rank), None)
    if slot is None:
        raise SwiftError(f'LoRA rank {rank} is above the {LORA_RANKS[-1]} vLLM supports; merge the adapter first')
    return slot
