"""``SglangEngine``: the engine interface on SGLang's offline ``sglang.Engine``, for ``--infer_backend sglang``.

Written against sglang 0.5.23's source and never run: SGLang needs a CUDA GPU. The engine starts in the caller's
thread (it launches its scheduler processes and installs signal handlers there); requests run on the loop thread of
``ChoiceStreamEngine`` as ``async_generate(input_ids=..., stream=True)``. ``incremental_streaming_output`` makes each
streamed output a delta (text, ``output_ids`` and the logprob lists of the new tokens), and
``meta_info['completion_tokens']`` counts the tokens so far. SGLang gets the stop tokens; the stop words are
``ChoiceStreamEngine``'s. LoRA adapters are loaded at start-up (``lora_paths``) and chosen per request by name
(``lora_path``).
"""
from dataclasses import dataclass
from typing import AsyncIterator

from ..protocol import ChatCompletionTokenLogprob, RequestConfig, TopLogprob
from ..template import Template
from .choice_engine import ChoiceRequest, ChoiceStreamEngine, Delta

DEFAULT_ADAPTER = 'default'  # SGLang's name for the bare --adapters checkpoint


@dataclass
class SglangSettings:
    """The ``sglang.Engine`` arguments swift passes on (``--sglang_*`` flags)."""
    dtype: str = 'auto'
    tp_size: int = 1
    pp_size: int = 1
    dp_size: int = 1
    ep_size: int = 1
    mem_fraction_static: float | None = None
    context_length: int | None = None
    disable_cuda_graph: bool = False
    quantization: str | None = None
    kv_cache_dtype: str = 'auto'
    enable_dp_attention: bool = False
    disable_custom_all_reduce: bool = True
    trust_remote_code: bool = False
    seed: int = 0


class SglangEngine(ChoiceStreamEngine):

    def __init__(self, model_dir: str, template: Template, settings: SglangSettings | None = None, *,
                 adapters: dict[str, str] | None = None, default_adapter: str | None = None,
                 model_name: str | None = None):
        """``adapters``: name to LoRA checkpoint, chosen per request; ``default_adapter``: the checkpoint that
        ``adapter=None`` runs with."""
        import sglang  # imported here: the package is optional and pulls in CUDA kernels

        super().__init__(template, model_name or model_dir, 'swift-sglang')
        self._adapters = dict(adapters or {})
        if default_adapter is not None:
            self._adapters[DEFAULT_ADAPTER] = default_adapter
        self.engine = sglang.Engine(**engine_kwargs(model_dir, settings or SglangSettings(), self._adapters))

    def _shutdown(self) -> None:
        self.engine.shutdown()  # its scheduler and detokenizer processes

    @property
    def adapter_names(self) -> list[str]:
        return [name for name in self._adapters if name != DEFAULT_ADAPTER]

    @property
    def max_model_len(self) -> int | None:
        return self.engine.tokenizer_manager.context_len

    async def _open(self, request: ChoiceRequest, config: RequestConfig) -> AsyncIterator[Delta]:
        lora = request.adapter or (DEFAULT_ADAPTER if DEFAULT_ADAPTER in self._adapters else None)
        outputs = await self.engine.async_generate(
            input_ids=request.prompt, stream=True, rid=request.id, lora_path=lora,
            sampling_params=sampling_params(config, request.max_tokens, self.stop_token_ids, request.choice),
            return_logprob=config.logprobs, top_logprobs_num=config.top_logprobs or 0)
        async for output in outputs:
            meta = output['meta_info']
            finish = meta['finish_reason']
            yield Delta(output['text'], meta['completion_tokens'],
                        self._entries(meta, config) if config.logprobs else None,
                        finish['type'] if finish else None)

    async def _abort(self, request: ChoiceRequest) -> None:
        self.engine.tokenizer_manager.abort_request(rid=request.id)

    def _entries(self, meta: dict, config: RequestConfig) -> list[ChatCompletionTokenLogprob]:
        """Entries of the new tokens: SGLang gives ``(logprob, token_id, text)`` per token, and per position a list
        of them for the most likely tokens. A stop token ends the answer without being part of it, as in PtEngine."""
        tops = meta.get('output_top_logprobs') or [None] * len(meta['output_token_logprobs'])
        top = config.top_logprobs or 0
        entries = []
        for (logprob, token, _), alternatives in zip(meta['output_token_logprobs'], tops):
            if token in self.stop_token_ids:
                continue
            ranked = [TopLogprob(*self.token_entry(t, value)) for value, t, _ in (alternatives or [])[:top]]
            entries.append(ChatCompletionTokenLogprob(*self.token_entry(token, logprob), top_logprobs=ranked))
        return entries


def engine_kwargs(model_dir: str, settings: SglangSettings, adapters: dict[str, str]) -> dict:
    """``sglang.Engine`` keyword arguments (``ServerArgs`` fields of sglang 0.5.23)."""
    kwargs = dict(
        model_path=model_dir, dtype=settings.dtype, tp_size=settings.tp_size, pp_size=settings.pp_size,
        dp_size=settings.dp_size, ep_size=settings.ep_size, mem_fraction_static=settings.mem_fraction_static,
        context_length=settings.context_length, disable_cuda_graph=settings.disable_cuda_graph,
        quantization=settings.quantization, kv_cache_dtype=settings.kv_cache_dtype,
        enable_dp_attention=settings.enable_dp_attention,
        disable_custom_all_reduce=settings.disable_custom_all_reduce, trust_remote_code=settings.trust_remote_code,
        random_seed=settings.seed,
        # each streamed output holds only what is new, rather than everything so far
        incremental_streaming_output=True, log_level='error')
    if adapters:
        kwargs.update(enable_lora=True, lora_paths=[f'{name}={path}' for name, path in adapters.items()],
                      max_loras_per_batch=len(adapters) + 1)  # +1: a batch may mix base and adapter requests
    return kwargs


def sampling_params(config: RequestConfig, max_tokens: int, stop_token_ids: list[int], choice: int = 0) -> dict:
    """SGLang's ``sampling_params`` for one choice of a request. Temperature 0 is greedy in SGLang. No ``stop``:
    SGLang would stream the start of a stop word before it cut the word, so ``ChoiceStreamEngine`` matches them."""
    greedy = not config.temperature
    params = {'max_new_tokens': max_tokens, 'temperature': 0.0 if greedy else config.temperature,
              'top_p': 1.0 if greedy else config.top_p or 1.0, 'top_k': -1 if greedy else config.top_k or -1,
              'repetition_penalty': config.repetition_penalty or 1.0, 'stop_token_ids': list(stop_token_ids)}
    if config.seed is not None:
        params['sampling_seed'] = config.seed + choice  # the n choices are n requests: each its own seed
    return params
