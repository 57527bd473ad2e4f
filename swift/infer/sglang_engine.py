"""``SglangEngine``: the engine interface on SGLang's offline ``sglang.Engine``, for ``--infer_backend sglang``.

Written against sglang 0.5.23's source and never run: SGLang needs a CUDA GPU. The engine starts in the caller's
thread (it launches its scheduler processes and installs signal handlers there); requests run on the loop thread of
``ChoiceStreamEngine`` as ``async_generate(input_ids=..., stream=True)``. ``incremental_streaming_output`` makes each
streamed output a delta (text, ``output_ids`` and the logprob lists of the new tokens), and
``meta_info['completion_tokens']`` counts the tokens so far. SGLang gets the stop tokens; the stop words are
``ChoiceStreamEngine``'s. LoRA adapters are loaded at start-up (``lora_paths``) and chosen per request by name
(``lora_path``).
"""
from typing import AsyncIterator

from ..protocol import ChatCompletionTokenLogprob, RequestConfig, TopLogprob
from ..template import Template
from .arguments import SglangArguments
from .choice_engine import ChoiceRequest, ChoiceStreamEngine, Delta
from .loop_engine import engine_dtype, flag_group

DEFAULT_ADAPTER = 'default'  # SGLang's name for the bare --adapters checkpoint


class SglangEngine(ChoiceStreamEngine):

    def __init__(self, model_dir: str, template: Template, settings: SglangArguments | None = None, *,
                 torch_dtype=None, trust_remote_code: bool = False, seed: int = 0,
                 adapters: dict[str, str] | None = None, default_adapter: str | None = None,
                 model_name: str | None = None, **flags):
        """``settings``: the ``--sglang_*`` flags; ``flags`` set single ones, by flag name or by ms-swift's keyword
        (``tp_size=2``). ``torch_dtype``: None for the model's own. ``adapters``: name to LoRA checkpoint, chosen
        per request; ``default_adapter``: the checkpoint that ``adapter=None`` runs with."""
        settings = flag_group(SglangArguments, settings, flags, 'SglangEngine')
        import sglang  # imported here: the package is optional and pulls in CUDA kernels

        super().__init__(template, model_name or model_dir, 'swift-sglang')
        self._adapters = dict(adapters or {})
        if default_adapter is not None:
            self._adapters[DEFAULT_ADAPTER] = default_adapter
        self.engine = sglang.Engine(**engine_kwargs(
            model_dir, settings, self._adapters, dtype=engine_dtype(torch_dtype, model_dir),
            trust_remote_code=trust_remote_code, seed=seed))

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


def engine_kwargs(model_dir: str, settings: SglangArguments, adapters: dict[str, str], *, dtype: str = 'auto',
                  trust_remote_code: bool = False, seed: int = 0) -> dict:
    """``sglang.Engine`` keyword arguments (``ServerArgs`` fields of sglang 0.5.23)."""
    kwargs = dict(
        model_path=model_dir, dtype=dtype, tp_size=settings.sglang_tp_size, pp_size=settings.sglang_pp_size,
        dp_size=settings.sglang_dp_size, ep_size=settings.sglang_ep_size,
        mem_fraction_static=settings.sglang_mem_fraction_static, context_length=settings.sglang_context_length,
        disable_cuda_graph=settings.sglang_disable_cuda_graph, quantization=settings.sglang_quantization,
        kv_cache_dtype=settings.sglang_kv_cache_dtype, enable_dp_attention=settings.sglang_enable_dp_attention,
        disable_custom_all_reduce=settings.sglang_disable_custom_all_reduce, trust_remote_code=trust_remote_code,
        speculative_algorithm=settings.sglang_speculative_algorithm,
        speculative_num_steps=settings.sglang_speculative_num_steps,
        speculative_eagle_topk=settings.sglang_speculative_eagle_topk,
        speculative_num_draft_tokens=settings.sglang_speculative_num_draft_tokens,
        random_seed=seed,
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
