"""Request and response dataclasses shared by the engines, the CLI and the server. Pure data.

Field names follow the OpenAI chat-completion schema so that responses serialise to what its clients expect.
"""
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class AdapterRequest:
    """ms-swift's per-request LoRA: answer with the adapter at ``path``, loaded the first time under ``name``."""
    name: str
    path: str


@dataclass
class InferRequest:
    """One conversation to answer. ``messages`` use the OpenAI shape: ``{'role': ..., 'content': ...}``, the content
    a string or a list of content parts (text, ``image_url``, ...). ``images`` (paths, URLs, base64, bytes or PIL
    images), ``videos`` and ``audios`` go where the content's ``<image>``, ``<video>``, ``<audio>`` placeholders
    stand, as in a dataset row."""
    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)
    videos: list[Any] = field(default_factory=list)
    audios: list[Any] = field(default_factory=list)
    # OpenAI's function specs the model may call, written into the prompt by the agent template; tool_choice is
    # OpenAI's: 'auto' (default), 'none', 'required' or {'type': 'function', 'function': {'name': ...}}.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


@dataclass
class RequestConfig:
    """Generation settings for one request, named as in the OpenAI API."""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    n: int = 1
    logprobs: bool = False  # return each generated token's log-probability, whole or streamed
    top_logprobs: int | None = None  # with logprobs: also this many (0..20) most likely tokens per position


@dataclass
class UsageInfo:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def _call_id() -> str:
    return f'call_{uuid.uuid4().hex[:24]}'


@dataclass
class Function:
    """A called function: its name and its arguments as JSON text."""
    name: str
    arguments: str


@dataclass
class ChatCompletionMessageToolCall:
    function: Function
    id: str = field(default_factory=_call_id)
    type: str = 'function'


@dataclass
class DeltaToolCall:
    """A tool call in a streamed chunk; ``index`` orders the calls of one choice."""
    index: int
    function: Function
    id: str = field(default_factory=_call_id)
    type: str = 'function'


@dataclass
class ChatMessage:
    role: Literal['system', 'user', 'assistant', 'tool']
    content: str | None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None  # read from the answer when tools were offered


@dataclass
class TopLogprob:
    """One of the most likely tokens at a position: its text, log-probability and UTF-8 bytes."""
    token: str
    logprob: float
    bytes: list[int] | None = None


@dataclass
class ChatCompletionTokenLogprob:
    """A generated token's log-probability, with the ``top_logprobs`` most likely tokens at its position."""
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass
class ChoiceLogprobs:
    """``choices[i].logprobs``: one entry per token of the returned content, in order."""
    content: list[ChatCompletionTokenLogprob] | None = None


@dataclass
class ChatCompletionResponseChoice:
    index: int
    message: ChatMessage
    finish_reason: Literal['stop', 'length', 'tool_calls'] | None = None
    logprobs: ChoiceLogprobs | None = None  # None unless the request asked for logprobs


def _completion_id() -> str:
    return f'chatcmpl-{uuid.uuid4().hex}'


@dataclass
class ChatCompletionResponse:
    model: str
    choices: list[ChatCompletionResponseChoice]
    usage: UsageInfo
    id: str = field(default_factory=_completion_id)
    object: str = 'chat.completion'
    created: int = field(default_factory=lambda: int(time.time()))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DeltaMessage:
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


@dataclass
class ChatCompletionStreamResponseChoice:
    index: int
    delta: DeltaMessage
    finish_reason: Literal['stop', 'length', 'tool_calls'] | None = None
    logprobs: ChoiceLogprobs | None = None


@dataclass
class ChatCompletionStreamResponse:
    model: str
    choices: list[ChatCompletionStreamResponseChoice]
    usage: UsageInfo | None = None
    id: str = field(default_factory=_completion_id)
    object: str = 'chat.completion.chunk'
    created: int = field(default_factory=lambda: int(time.time()))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EmbeddingData:
    """One vector of an embeddings response (OpenAI's shape)."""
    embedding: list[float] | str  # floats, or base64 of little-endian float32 (encoding_format base64)
    index: int = 0
    object: str = 'embedding'


@dataclass
class EmbeddingResponse:
    """What an embedding model answers (``/v1/embeddings``, and ``infer`` as ms-swift returns it)."""
    model: str
    data: list[EmbeddingData]
    usage: UsageInfo
    id: str = field(default_factory=lambda: f'embd-{uuid.uuid4().hex}')
    object: str = 'list'
    created: int = field(default_factory=lambda: int(time.time()))

    def to_dict(self) -> dict:
        return asdict(self)
