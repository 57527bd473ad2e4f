"""``LmdeployEngine``: the engine interface on LMDeploy's ``AsyncEngine``, for ``--infer_backend lmdeploy``.

Written against lmdeploy 0.18.0's source and never run: LMDeploy needs a CUDA GPU. The ``AsyncEngine`` is built in
the caller's thread and its loop started on the loop thread of ``ChoiceStreamEngine`` (as lmdeploy's own
``pipeline`` does with a thread of its own). Each request is a session: ``preprocess(input_ids=...)`` then
``generate``, whose outputs are deltas: new text, the new tokens' logprobs (one ``{token_id: logprob}`` per token),
the tokens generated so far (``generate_token_len``, which leaves out a stop token) and, last, the finish reason.
TurboMind serves models it supports, LMDeploy's PyTorch engine the rest and every LoRA adapter
(``PytorchEngineConfig(adapters=...)``, chosen per request by ``adapter_name``).
"""
from typing import AsyncIterator

from ..protocol import ChatCompletionTokenLogprob, RequestConfig, TopLogprob
from ..template import Template
from .arguments import LmdeployArguments
from .base import LOGPROB_FLOOR
from .choice_engine import ChoiceRequest, ChoiceStreamEngine, Delta
from .loop_engine import flag_group

DEFAULT_ADAPTER = 'default'  # the bare --adapters checkpoint, as LMDeploy names it here


class LmdeployEngine(ChoiceStreamEngine):

    def __init__(self, model_dir: str, template: Template, settings: LmdeployArguments | None = None, *,
                 trust_remote_code: bool = False, adapters: dict[str, str] | None = None,
                 default_adapter: str | None = None, model_name: str | None = None, **flags):
        """``settings``: the ``--lmdeploy_*`` flags; ``flags`` set single ones, by flag name or by ms-swift's
        keyword (``session_len=4096``). ``adapters``: name to LoRA checkpoint, chosen per request;
        ``default_adapter``: the checkpoint that ``adapter=None`` runs with."""
        settings = flag_group(LmdeployArguments, settings, flags, 'LmdeployEngine')
        # imported here: the package is optional and pulls in CUDA kernels
        from lmdeploy import GenerationConfig
        from lmdeploy.serve.core import AsyncEngine

        super().__init__(template, model_name or model_dir, 'swift-lmdeploy')
        self._adapters = dict(adapters or {})
        if default_adapter is not None:
            self._adapters[DEFAULT_ADAPTER] = default_adapter
        self._generation_config = GenerationConfig
        self._sessions = {}  # request id to its lmdeploy session, to abort it
        backend, config = _backend_config(model_dir, settings, self._adapters, trust_remote_code)
        self.engine = AsyncEngine(model_dir, backend=backend, backend_config=config,
                                  trust_remote_code=trust_remote_code)
        # The PyTorch engine binds to the loop it starts on: ours, where every request will run.
        self.engine.start_loop(self._loop, use_async_api=False)

    def _shutdown(self) -> None:
        self.engine.close()

    @property
    def adapter_names(self) -> list[str]:
        return [name for name in self._adapters if name != DEFAULT_ADAPTER]

    @property
    def max_model_len(self) -> int | None:
        return self.engine.session_len

    async def _open(self, request: ChoiceRequest, config: RequestConfig) -> AsyncIterator[Delta]:
        lora = request.adapter or (DEFAULT_ADAPTER if DEFAULT_ADAPTER in self._adapters else None)
        gen_config = self._generation_config(**generation_kwargs(config, request.max_tokens, self.stop_token_ids,
                                                                 request.choice))
        session = self._sessions[request.id] = self.engine.session_mgr.get()
        try:
            prepared = await self.engine.preprocess(None, session, gen_config=gen_config, adapter_name=lora,
                                                    input_ids=request.prompt)
            async for out in self.engine.generate(prepared, stream_response=True):
                entries = self._entries(out.token_ids, out.logprobs, config) if config.logprobs else None
                # lmdeploy leaves a stop token out of its count; usage counts it, as it was generated
                yield Delta(out.response, out.generate_token_len + (out.finish_reason == 'stop'), entries,
                            out.finish_reason)
        finally:
            del self._sessions[request.id]

    async def _abort(self, request: ChoiceRequest) -> None:
        session = self._sessions.get(request.id)
        if session is not None:
            await session.async_abort()

    def _entries(self, token_ids: list[int] | None, logprobs: list[dict[int, float]] | None,
                 config: RequestConfig) -> list[ChatCompletionTokenLogprob]:
        """Entries of the new tokens. Each position's dict holds the ``logprobs`` most likely tokens and the
        sampled one, which may be outside them (so it sorts last)."""
        top = config.top_logprobs or 0
        entries = []
        for token, position in zip(token_ids or [], logprobs or []):
            ranked = sorted(position.items(), key=lambda item: -item[1])[:top]
            entries.append(ChatCompletionTokenLogprob(
                *self.token_entry(token, position.get(token, LOGPROB_FLOOR)),
                top_logprobs=[TopLogprob(*self.token_entry(t, value)) for t, value in ranked]))
        return entries


def _backend_config(model_dir: str, settings: LmdeployArguments, adapters: dict[str, str],
                    trust_remote_code: bool) -> tuple[str, object]:
    """The backend and its config: TurboMind where it supports the model, else LMDeploy's PyTorch engine, which
    is also the one with LoRA."""
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig
    from lmdeploy.archs import autoget_backend_config

    kwargs = backend_config_kwargs(settings)
    if adapters:
        return 'pytorch', PytorchEngineConfig(**kwargs, adapters=adapters)
    return autoget_backend_config(model_dir, TurbomindEngineConfig(**kwargs),
                                  trust_remote_code=trust_remote_code)


def backend_config_kwargs(settings: LmdeployArguments) -> dict:
    """Fields that ``TurbomindEngineConfig`` and ``PytorchEngineConfig`` share (lmdeploy 0.18.0)."""
    return dict(tp=settings.lmdeploy_tp, session_len=settings.lmdeploy_session_len,
                cache_max_entry_count=settings.lmdeploy_cache_max_entry_count,
                quant_policy=settings.lmdeploy_quant_policy)


def generation_kwargs(config: RequestConfig, max_tokens: int, stop_token_ids: list[int], choice: int = 0) -> dict:
    """``lmdeploy.GenerationConfig`` fields for one choice of a request. Stop words are left to
    ``ChoiceStreamEngine``: LMDeploy's ``stop_words`` stop on every token that contains the word."""
    greedy = not config.temperature
    kwargs = {'max_new_tokens': max_tokens, 'do_sample': not greedy, 'stop_token_ids': list(stop_token_ids),
              'repetition_penalty': config.repetition_penalty or 1.0}
    if not greedy:  # lmdeploy's defaults (top_k 50, temperature 0.8) are not OpenAI's: say every one
        kwargs.update(temperature=config.temperature, top_p=config.top_p or 1.0, top_k=config.top_k or 0)
    if config.seed is not None:
        kwargs['random_seed'] = config.seed + choice  # the n choices are n requests: each its own seed
    if config.logprobs:
        kwargs['logprobs'] = max(1, config.top_logprobs or 0)  # 0 would return none, not even the sampled token
    return kwargs
