"""The OpenAI-compatible HTTP server of ``swift deploy``: FastAPI routes over one ``InferEngine``.

    GET  /health                 liveness, no key needed
    GET  /v1/models              the base model first, then each adapter
    POST /v1/chat/completions    chat template applied; whole or streamed (server-sent events)
    POST /v1/completions         raw prompt text, no chat template
    POST /v1/embeddings          an embedding model's vectors (OpenAI's shape, float or base64)
    POST /v1/rerank, /rerank     a reranker's scores of documents for a query (Jina/Cohere/vLLM shape)

Every error is OpenAI's shape, ``{"error": {"message", "type", "code"}}``: bad requests are 4xx and never stop
the server. Generation runs in ``BatchScheduler``'s worker thread; this module only translates HTTP.
"""
import asyncio
import base64
import dataclasses
import hmac
import json
import struct
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..model.retrieval import RETRIEVAL_TASKS
from ..protocol import (ChatCompletionResponse, ChatCompletionStreamResponse, ChatCompletionTokenLogprob,
                        EmbeddingData, EmbeddingResponse, InferRequest, RequestConfig, UsageInfo)
from ..utils import SwiftError, get_logger
from .base import MAX_TOP_LOGPROBS, InferEngine, check_logprobs, stream_choice
from .scheduler import BatchScheduler, Job
from .tools import delta_tool_calls

logger = get_logger()
DISCONNECT_POLL_S = 0.5  # how often a stream waiting for its batch checks that its client is still there
# What a body may be sent as: JSON, or no type or curl -d's form type, as bodies are parsed by hand anyway
JSON_TYPES = ('', 'application/json', 'application/x-www-form-urlencoded')
SEED_RANGE = (-2**63, 2**64 - 1)  # what torch.manual_seed accepts


# ---- request bodies ----------------------------------------------------------------------------------------------
class ContentPart(BaseModel, extra='allow'):
    """One part of a message's content: text, or media (``image_url`` with a data URL, a path or an http URL, ...)
    that the engine reads as a dataset row's; other types are refused."""
    type: str | None = None
    text: str | None = None


class Message(BaseModel):
    role: Literal['system', 'user', 'assistant', 'tool', 'tool_call', 'tool_response']  # the last two: ms-swift's
    content: str | list[ContentPart] | None = None
    tool_calls: list[dict] | None = None  # an assistant's earlier calls, OpenAI's shape


class StreamOptions(BaseModel):
    include_usage: bool = False


class _GenerationFields(BaseModel):
    """The sampling fields both endpoints share; unknown fields are ignored, as OpenAI clients send many."""
    model: str
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    # Not below 0.01: it divides the logits, and a tinier one overflows them to inf, which cannot be sampled
    repetition_penalty: float | None = Field(None, ge=0.01)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None


class ChatCompletionRequest(_GenerationFields):
    messages: list[Message] = Field(min_length=1)
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class CompletionRequest(_GenerationFields):
    prompt: str | list[str]
    # The legacy endpoint's logprobs: how many most likely tokens to list per position (0: only the chosen one's)
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings body: text, or a list of texts (token-id inputs are refused)."""
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal['float', 'base64'] = 'float'
    dimensions: int | None = Field(None, ge=1)


class RerankDocument(BaseModel):
    text: str


class RerankRequest(BaseModel):
    """The common rerank body (Jina, Cohere, vLLM): ``query``, ``documents`` (texts or ``{"text": ...}``),
    ``top_n`` best to return."""
    model: str
    query: str
    documents: list[str | RerankDocument] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


# ---- errors ------------------------------------------------------------------------------------------------------
class APIError(Exception):

    def __init__(self, status: int, message: str, type_: str = 'invalid_request_error', code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


def _error_body(message: str, type_: str, code: str | int | None) -> dict:
    return {'error': {'message': message, 'type': type_, 'code': code}}


def _add_error_handlers(app: FastAPI) -> None:

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError):
        return JSONResponse(_error_body(err.message, err.type, err.code), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return JSONResponse(_error_body(str(err.detail), 'invalid_request_error', err.status_code),
                            status_code=err.status_code)


async def _parse(request: Request, model: type[BaseModel]) -> BaseModel:
    """The JSON body as ``model``. Read by hand, so a body sent without a JSON content type (curl -d) still works;
    one declared as something else (text/plain, a form upload) is refused with 415."""
    content_type = request.headers.get('content-type', '').partition(';')[0].strip().lower()
    if content_type not in JSON_TYPES and not content_type.endswith('+json'):
        raise APIError(415, f'Content-Type {content_type!r} is not supported; send the body as application/json')
    try:
        payload = json.loads(await request.body())
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands deep
        raise APIError(400, f'the request body is not valid JSON: {err}') from None
    try:  # JSON may spell lone UTF-16 surrogates (\ud800), which no tokenizer or response can encode
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise APIError(400, 'the request body holds an unpaired UTF-16 surrogate; send valid Unicode text') from None
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = '.'.join(str(part) for part in first['loc']) or 'body'
        raise APIError(400, f"{where}: {first['msg']}") from None


def _api_key_check(api_key: str | None):

    async def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or '').partition(' ')
        if scheme.lower() != 'bearer' or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, 'Incorrect API key provided.', code='invalid_api_key')

    return check


# ---- translating requests ----------------------------------------------------------------------------------------
# OpenAI's media parts and ms-swift's: dataset/media.py turns them into placeholders and media.
MEDIA_PARTS = ('image_url', 'image', 'video_url', 'video', 'audio_url', 'audio', 'input_audio')


def _message_content(message: Message) -> str | list[dict]:
    """The text of a message, or its parts where some are media."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ''
    parts = []
    for part in message.content:
        if part.type == 'text':
            if part.text is None:
                raise APIError(400, 'a content part of type text needs its text')
            parts.append({'type': 'text', 'text': part.text})
        elif part.type in MEDIA_PARTS:
            parts.append(part.model_dump(exclude_none=True))
        else:
            raise APIError(400, f'content parts of type {part.type!r} are not supported; send text or '
                           f'{", ".join(MEDIA_PARTS)}')
    if all(part['type'] == 'text' for part in parts):
        return ''.join(part['text'] for part in parts)
    return parts


def _request_config(body: _GenerationFields, defaults: RequestConfig, max_tokens: int) -> RequestConfig:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop or []
    config = dataclasses.replace(defaults, max_tokens=max_tokens, stop=[*defaults.stop, *stop], n=body.n,
                                 stream=body.stream, seed=defaults.seed if body.seed is None else body.seed)
    if isinstance(body, ChatCompletionRequest):
        config.logprobs, config.top_logprobs = bool(body.logprobs), body.top_logprobs
    else:
        config.logprobs, config.top_logprobs = body.logprobs is not None, body.logprobs
    try:
        check_logprobs(config)  # top_logprobs without logprobs
    except SwiftError as err:
        raise APIError(400, str(err)) from None
    for name in ('temperature', 'top_p', 'top_k', 'repetition_penalty'):
        if getattr(body, name) is not None:
            setattr(config, name, getattr(body, name))
    return config


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


class _Server:
    """The state the routes share: the engine, the scheduler, the model names and the defaults."""

    def __init__(self, engine: InferEngine, served_model_name: str, adapter_names: list[str],
                 defaults: RequestConfig, scheduler: BatchScheduler):
        if served_model_name in adapter_names:
            raise SwiftError(f'adapter name {served_model_name!r} is also the served model name')
        self.engine, self.served, self.adapters = engine, served_model_name, list(adapter_names)
        self.defaults, self.scheduler = defaults, scheduler

    def adapter_for(self, model: str) -> str | None:
        if model == self.served:
            return None
        if model in self.adapters:
            return model
        raise APIError(404, f'The model `{model}` does not exist; served: {", ".join([self.served, *self.adapters])}',
                       code='model_not_found')

    def submit(self, body: _GenerationFields, encode) -> Job:
        """Encode the prompt (``encode()`` gives its ids), check that it fits the context, and queue it."""
        adapter = self.adapter_for(body.model)
        try:
            prompt = encode()
        except SwiftError as err:
            raise APIError(400, str(err)) from None
        if not prompt:  # generate needs a token to start from
            raise APIError(400, 'the prompt is empty')
        try:
            max_tokens = self.engine.max_new_tokens(len(prompt), body.max_tokens or body.max_completion_tokens,
                                                    default=self.defaults.max_tokens)
        except SwiftError as err:
            raise APIError(400, str(err), code='context_length_exceeded') from None
        config = _request_config(body, self.defaults, max_tokens)
        if isinstance(body, ChatCompletionRequest) and body.tools and body.tool_choice != 'none':
            config = self.engine.with_tool_stops(config, self.engine.template, True)
        job = Job(prompt, config, adapter, asyncio.get_running_loop())
        self.scheduler.submit(job)
        return job

    def scorer_error(self, what: str) -> APIError:
        return APIError(400, f'{self.served} is a reward model or classifier (--task_type seq_cls): it scores '
                        f'conversations and cannot {what}. POST /v1/chat/completions with the conversation and '
                        "without stream, n or logprobs: the answer's content is the score or predicted class",
                        code='reward_model')

    async def score(self, body: ChatCompletionRequest, messages: list[dict]) -> dict:
        """A reward model's answer, as ms-swift serves it: the conversation's score as the content."""
        adapter = self.adapter_for(body.model)
        if body.stream or body.n > 1 or body.logprobs:
            raise self.scorer_error('stream, give several choices or logprobs')
        try:  # in a thread: the forward pass would hold up the event loop
            response, = await asyncio.to_thread(self.engine.infer, [InferRequest(messages=messages)], adapter=adapter)
        except SwiftError as err:
            raise APIError(400, str(err)) from None
        return dataclasses.replace(response, model=body.model).to_dict()


async def _result(job: Job) -> ChatCompletionResponse:
    """The job's whole response, once its batch is done."""
    try:
        while (event := await job.events.get())[0] == 'text':
            pass
    finally:
        job.cancelled = True  # stops the rows if this handler is cancelled; harmless once done
    if event[0] == 'error':
        raise APIError(500, f'generation failed: {event[1]}', 'server_error')
    return event[1]


async def _events(job: Job, request: Request) -> AsyncIterator[tuple]:
    """The job's events until it ends; stops, cancelling the job, when the client disconnects."""
    try:
        while True:
            try:
                event = await asyncio.wait_for(job.events.get(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                event = None
            if event is not None:
                yield event
                if event[0] != 'text':
                    return
            if await request.is_disconnected():
                return
    finally:
        job.cancelled = True


# ---- routes ------------------------------------------------------------------------------------------------------
def _model_routes(router: APIRouter, server: _Server) -> None:

    @router.get('/v1/models')
    async def models():
        created = int(time.time())
        return {'object': 'list', 'data': [{'id': name, 'object': 'model', 'created': created, 'owned_by': 'swift'}
                                           for name in [server.served, *server.adapters]]}


def _chat_routes(router: APIRouter, server: _Server) -> None:

    @router.post('/v1/chat/completions')
    async def chat_completions(request: Request):
        body = await _parse(request, ChatCompletionRequest)
        messages = [{'role': m.role, 'content': _message_content(m), **({'tool_calls': m.tool_calls} if m.tool_calls
                                                                          else {})} for m in body.messages]
        infer_request = InferRequest(messages=messages, tools=body.tools, tool_choice=body.tool_choice)
        if server.engine.task_type in RETRIEVAL_TASKS:  # ms-swift's answer: the vector, or the score as content
            return await server.score(body, messages)
        if server.engine.is_scorer:
            if any(isinstance(m['content'], list) for m in messages):
                raise APIError(400, f'{server.served} is a reward model: it scores text conversations only',
                               code='reward_model')
            return await server.score(body, messages)
        job = server.submit(body, lambda: server.engine.encode(infer_request))
        # the answer's tool calls, read by the agent template's parser when the request offered tools
        finish = lambda response: server.engine.finish(response, infer_request)  # noqa: E731
        if body.stream:
            return StreamingResponse(_chat_stream(job, body, request, finish), media_type='text/event-stream')
        response = finish(await _result(job))
        return dataclasses.replace(response, model=body.model).to_dict()


async def _chat_stream(job: Job, body: ChatCompletionRequest, request: Request, finish):
    chunk_id, created = f'chatcmpl-{uuid.uuid4().hex}', int(time.time())

    def chunk(choice: int, text: str, finish_reason: str | None = None, usage=None, logprobs=None,
              tool_calls=None) -> str:
        choices = [stream_choice(choice, text, finish_reason, logprobs)]
        choices[0].delta.tool_calls = delta_tool_calls(tool_calls)
        return _sse(ChatCompletionStreamResponse(body.model, choices, usage, chunk_id, created=created).to_dict())

    async for event in _events(job, request):
        if event[0] == 'text':
            yield chunk(event[1], event[2], logprobs=event[3])
        elif event[0] == 'error':
            yield _sse(_error_body(f'generation failed: {event[1]}', 'server_error', None))
        else:
            for choice in finish(event[1]).choices:
                # content '' rather than null: clients print delta.content of every chunk
                yield chunk(choice.index, '', choice.finish_reason, event[1].usage,
                            tool_calls=choice.message.tool_calls)
            if body.stream_options and body.stream_options.include_usage:
                usage_chunk = ChatCompletionStreamResponse(body.model, [], event[1].usage, chunk_id, created=created)
                yield _sse(usage_chunk.to_dict())
            yield _sse('[DONE]')


def _completion_routes(router: APIRouter, server: _Server) -> None:

    @router.post('/v1/completions')
    async def completions(request: Request):
        body = await _parse(request, CompletionRequest)
        if server.engine.is_scorer:
            raise server.scorer_error('complete raw text')
        prompt = body.prompt if isinstance(body.prompt, str) else _single_prompt(body.prompt)
        job = server.submit(body, lambda: server.engine.encode_text(prompt))
        if body.stream:
            return StreamingResponse(_completion_stream(job, body, prompt, request), media_type='text/event-stream')
        response = await _result(job)
        choices = [(c.index, c.message.content, c.finish_reason,
                    None if c.logprobs is None else _legacy_logprobs(c.logprobs.content, prompt.encode())[0])
                   for c in response.choices]
        return _completion_body(body.model, choices, dataclasses.asdict(response.usage))


def _single_prompt(prompts: list[str]) -> str:
    if len(prompts) != 1:
        raise APIError(400, f'send one prompt per request, got {len(prompts)}')
    return prompts[0]


def _completion_body(model: str, choices: list[tuple], usage: dict | None, completion_id: str | None = None,
                     created: int | None = None) -> dict:
    """The legacy completion shape; ``choices`` are ``(index, text, finish_reason, logprobs)``."""
    return {'id': completion_id or f'cmpl-{uuid.uuid4().hex}', 'object': 'text_completion',
            'created': created or int(time.time()), 'model': model, 'usage': usage,
            'choices': [{'index': i, 'text': text, 'logprobs': logprobs, 'finish_reason': finish}
                        for i, text, finish, logprobs in choices]}


def _legacy_logprobs(entries: list[ChatCompletionTokenLogprob], before: bytes) -> tuple[dict, bytes]:
    """Chat logprob entries in the legacy completion shape, and the bytes of the text up to their end.

    ``text_offset`` counts characters from the start of the prompt, as OpenAI's does: ``before`` holds the prompt's
    bytes and those of the tokens earlier stream chunks carried. A token holding half a character starts where that
    character does.
    """
    offsets = []
    for entry in entries:
        offsets.append(len(before.decode('utf-8', errors='ignore')))
        before += bytes(entry.bytes)
    return {'tokens': [e.token for e in entries], 'token_logprobs': [e.logprob for e in entries],
            'top_logprobs': [{t.token: t.logprob for t in e.top_logprobs} for e in entries],
            'text_offset': offsets}, before


async def _completion_stream(job: Job, body: CompletionRequest, prompt: str, request: Request):
    completion_id, created = f'cmpl-{uuid.uuid4().hex}', int(time.time())
    spelled: dict[int, bytes] = {}  # per choice, the prompt and the tokens sent so far: where text_offset goes on
    async for event in _events(job, request):
        if event[0] == 'text':
            _, index, text, entries = event
            logprobs = None
            if entries is not None:
                logprobs, spelled[index] = _legacy_logprobs(entries, spelled.get(index, prompt.encode()))
            yield _sse(_completion_body(body.model, [(index, text, None, logprobs)], None, completion_id, created))
        elif event[0] == 'error':
            yield _sse(_error_body(f'generation failed: {event[1]}', 'server_error', None))
        else:
            usage = dataclasses.asdict(event[1].usage)
            for choice in event[1].choices:
                yield _sse(_completion_body(body.model, [(choice.index, '', choice.finish_reason, None)], usage,
                                            completion_id, created))
            yield _sse('[DONE]')


def _retrieval_routes(router: APIRouter, server: _Server) -> None:
    """``/v1/embeddings`` for embedding models and ``/v1/rerank`` for rerankers (--task_type embedding,
    reranker, generative_reranker); other models answer them with a 400."""

    def runner(kind: str):
        task = server.engine.task_type
        if task not in kind.split('|'):
            raise APIError(400, f'{server.served} is a {task} model, not a {kind.replace("|", " or ")} model',
                           code='wrong_task_type')
        return server.engine.retrieval

    async def run(call, *args):
        try:  # in a thread: the forward pass would hold up the event loop
            return await asyncio.to_thread(call, *args)
        except SwiftError as err:
            raise APIError(400, str(err)) from None

    @router.post('/v1/embeddings')
    async def embeddings(request: Request):
        body = await _parse(request, EmbeddingRequest)
        retrieval, adapter = runner('embedding'), server.adapter_for(body.model)
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or not all(isinstance(text, str) for text in texts):
            raise APIError(400, "'input' must be a text or a list of texts (token ids are not taken here)")
        vectors, tokens = await run(retrieval.embed, [[{'role': 'user', 'content': t}] for t in texts], adapter)
        if body.dimensions is not None:  # Matryoshka-style: the first dimensions, normalised again
            vectors = [_normalised(vector[:body.dimensions]) for vector in vectors]
        data = [EmbeddingData(_encoded(vector, body.encoding_format), i) for i, vector in enumerate(vectors)]
        return EmbeddingResponse(body.model, data, UsageInfo(tokens, 0, tokens)).to_dict()

    async def rerank(request: Request):
        body = await _parse(request, RerankRequest)
        retrieval, adapter = runner('reranker|generative_reranker'), server.adapter_for(body.model)
        texts = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
        documents = [[{'role': 'assistant', 'content': text}] for text in texts]
        scores, tokens = await run(retrieval.rerank, [{'role': 'user', 'content': body.query}], documents, adapter)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:body.top_n]
        results = [{'index': i, 'relevance_score': scores[i],
                    **({'document': {'text': texts[i]}} if body.return_documents else {})} for i in order]
        return {'id': f'rerank-{uuid.uuid4().hex}', 'model': body.model, 'results': results,
                'usage': {'prompt_tokens': tokens, 'total_tokens': tokens}}

    router.post('/v1/rerank')(rerank)
    router.post('/rerank')(rerank)


def _normalised(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """OpenAI's base64 encoding: the little-endian float32 bytes (what the openai client decodes by default)."""
    if encoding_format == 'float':
        return vector
    return base64.b64encode(struct.pack(f'<{len(vector)}f', *vector)).decode()


# ---- the app -----------------------------------------------------------------------------------------------------
def create_app(engine: InferEngine, served_model_name: str, adapter_names: list[str], api_key: str | None = None,
               default_request_config: RequestConfig | None = None, log_interval: float = 0) -> FastAPI:
    """The FastAPI app serving ``engine``: the base as ``served_model_name``, each adapter under its name."""
    scheduler = BatchScheduler(engine, engine.max_batch_size, log_interval)
    server = _Server(engine, served_model_name, adapter_names, default_request_config or RequestConfig(), scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        scheduler.stop()
        # Here rather than after uvicorn.run returns: on SIGTERM uvicorn re-raises the signal once it has shut
        # down, which ends the process before any code after it, and vLLM's engine processes would outlive it.
        engine.close()

    app = FastAPI(title='swift deploy', lifespan=lifespan)
    _add_error_handlers(app)

    @app.get('/health')
    async def health():
        return {'status': 'ok'}

    router = APIRouter(dependencies=[Depends(_api_key_check(api_key))])
    _model_routes(router, server)
    _chat_routes(router, server)
    _completion_routes(router, server)
    _retrieval_routes(router, server)
    app.include_router(router)
    return app
