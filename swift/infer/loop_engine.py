"""What the engines on another package's asyncio engine share (vLLM's, SGLang's, LMDeploy's): that engine lives on
an asyncio loop in a thread of its own, ``generate`` is called from any thread and waits there, and the backend
schedules requests itself, so the server hands it several batches at once."""
import asyncio
import threading
from abc import abstractmethod
from dataclasses import fields, replace
from typing import Awaitable, Callable, Coroutine, TypeVar

from ..model import dtype_name
from ..protocol import InferRequest
from ..template import Template
from ..template.base import Prompt
from ..template.vision import media_tensors
from ..utils import SwiftError
from .base import InferEngine

CANCEL_POLL_SECONDS = 0.05
G = TypeVar('G')


def flag_group(cls: type[G], group: G | None, keywords: dict, engine: str) -> G:
    """An engine's flag group (``VllmArguments``, ``SglangArguments``, ``LmdeployArguments``): ``group``, or the
    defaults, with ``keywords`` set on it and checked as on the command line. A keyword is the flag's name
    (``vllm_max_model_len``) or ms-swift's engine keyword, which is the flag without its engine prefix
    (``max_model_len``); any other is a TypeError, as Python's own."""
    flags = [f.name for f in fields(cls) if f.init]
    by_keyword = {name.split('_', 1)[1]: name for name in flags}  # the one mapping of ms-swift's names onto flags
    values = {}
    for key, value in keywords.items():
        flag = key if key in flags else by_keyword.get(key)
        if flag is None:
            raise TypeError(f'{engine}() got an unexpected keyword argument {key!r}')
        values[flag] = value
    if group is None:
        return cls(**values)
    return replace(group, **values) if values else group


def engine_dtype(torch_dtype, model_dir: str) -> str:
    """The dtype name for an engine that loads ``model_dir`` itself: ``--torch_dtype`` (or ms-swift's
    ``torch.dtype``) resolved as swift loads models; None is the model's own (float32 on a CPU)."""
    return dtype_name(None if torch_dtype is None else str(torch_dtype).removeprefix('torch.'), model_dir)


class LoopEngine(InferEngine):
    concurrent_batches = 16

    def __init__(self, template: Template, max_batch_size: int, model_name: str, thread_name: str):
        super().__init__(template, max_batch_size, model_name)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name=thread_name, daemon=True)
        self._loop_thread.start()
        self._close_lock = threading.Lock()

    def encode(self, request: InferRequest, template: Template | None = None) -> Prompt:
        """The prompt's ids go to the backend alone, so a request with images or video is refused rather than
        answered blind."""
        prompt = super().encode(request, template)
        if media_tensors(prompt.media):
            backend = type(self).__name__.removesuffix('Engine').lower()
            raise SwiftError(f'--infer_backend {backend} does not take images, video or audio here; use '
                             '--infer_backend pt for multimodal requests')
        return prompt

    def _wait(self, coroutine: Coroutine):
        """Run ``coroutine`` on the engine's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Stop the backend and the loop thread; once, from whichever thread calls first (swift deploy's server on
        shutdown, then its ``with`` block)."""
        with self._close_lock:
            if not self._loop_thread.is_alive():
                return
            try:
                self._shutdown()
            finally:
                self._stop_loop()

    @abstractmethod
    def _shutdown(self) -> None:
        """Stop the backend."""

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()

    @staticmethod
    async def _all_or_none(coroutines: list[Coroutine]) -> list:
        """Every result, in order; when one fails, the others are cancelled (their answers are not wanted any more,
        and cancelling a backend's request aborts it)."""
        tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    @staticmethod
    async def _abort_when(is_cancelled: Callable[[], bool], abort: Callable[[], Awaitable]) -> None:
        """Watch a running request: abort it once its requester is gone."""
        while not is_cancelled():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
        await abort()
