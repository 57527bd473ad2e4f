"""``swift deploy``: serve a model, and any number of LoRA adapters on it, over an OpenAI-compatible HTTP API.

    swift deploy --adapters output/vx-xxx/checkpoint-xxx --temperature 0 --max_new_tokens 2048 \\
        --served_model_name my-model
    swift deploy --adapters lora1=output/run1/checkpoint-50 lora2=output/run2/checkpoint-50 --port 8000

A bare adapter path is applied to the served model, as in ``swift infer``; each ``name=path`` adapter is served
as a model of its own, sharing the base weights with the others.
"""
import json
import os
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ..arguments import DeployArguments
from ..infer.server import create_app
from ..utils import SwiftError, get_logger
from .common import apply_checkpoint_args, to_arguments
from .infer import build_engine, request_config

logger = get_logger()


def deploy_main(args: DeployArguments | list[str] | None = None) -> None:
    args = apply_checkpoint_args(to_arguments(DeployArguments, args))
    served_name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    with build_engine(args, args.adapter_mapping) as engine:  # vLLM's processes end with the server
        app = create_app(engine, served_name, list(args.adapter_mapping), api_key=args.api_key,
                         default_request_config=request_config(args), log_interval=args.log_interval)
        add_deploy_flags(app, max_logprobs=args.max_logprobs, verbose=args.verbose, owned_by=args.owned_by)
        names = ', '.join([served_name, *args.adapter_mapping])
        logger.info(f'serving {names} on http://{args.host}:{args.port}/v1')
        uvicorn.run(app, host=args.host, port=args.port, log_level='info')


@contextmanager
def serve_in_thread(args: DeployArguments, host: str, port: int) -> Iterator[tuple[str, str]]:
    """``(base url, served name)`` of --model served by this process in a thread for the block (``swift eval``
    without --eval_url, as ms-swift's eval deploys for its run); the server and its engine stop after it."""
    served_name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    with build_engine(args, args.adapter_mapping) as engine:
        app = create_app(engine, served_name, list(args.adapter_mapping), api_key=args.api_key,
                         default_request_config=request_config(args), log_interval=args.log_interval)
        add_deploy_flags(app, max_logprobs=args.max_logprobs, verbose=args.verbose, owned_by=args.owned_by)
        with serve_app_in_thread(app, host, port) as url:
            logger.info(f'serving {served_name} on {url} for the evaluation')
            yield url, served_name


@contextmanager
def serve_app_in_thread(app: FastAPI, host: str, port: int) -> Iterator[str]:
    """The base url of ``app`` served by uvicorn in a thread for the block (also training's EvalScope scoring)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level='warning'))
    thread = threading.Thread(target=server.run, name='swift-eval-server', daemon=True)
    thread.start()
    url = f'http://{host}:{port}/v1'
    try:
        _wait_until_serving(url, thread)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_until_serving(url: str, thread: threading.Thread, timeout: float = 120) -> None:
    """Poll ``url``/models until the server answers; a server thread that ended (port taken) or one that never
    answers is one line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not thread.is_alive():
            raise SwiftError(f'the model server stopped before it answered on {url}')
        try:
            with urllib.request.urlopen(f'{url}/models', timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError:  # it answers (a 401 under --api_key)
            return
        except OSError:
            time.sleep(0.2)
    raise SwiftError(f'the model server did not answer on {url} within {timeout:.0f} s')


def add_deploy_flags(app: FastAPI, max_logprobs: int = 20, verbose: bool = False, owned_by: str = 'swift') -> None:
    """ms-swift's deploy flags around the app: ``--max_logprobs`` (a request asking for more top log-probabilities
    is a 400), ``--verbose`` (each request and whole response logged), ``--owned_by`` (the /v1/models field)."""

    @app.middleware('http')
    async def deploy_flags(request: Request, call_next):
        path = request.url.path
        if request.method == 'POST':
            raw = await request.body()
            asked = _asked_logprobs(path, raw)
            if asked is not None and asked > max_logprobs:
                message = f"top_logprobs ({asked}) is greater than the server's --max_logprobs ({max_logprobs})"
                return JSONResponse({'error': {'message': message, 'type': 'invalid_request_error',
                                               'code': 'max_logprobs'}}, status_code=400)
            if verbose:
                logger.info(f'request {path}: {raw.decode("utf-8", "replace")}')
        response = await call_next(request)
        rewrite = path == '/v1/models' and owned_by != 'swift' and response.status_code == 200
        streamed = response.headers.get('content-type', '').startswith('text/event-stream')
        if not (rewrite or (verbose and request.method == 'POST' and not streamed)):
            return response
        body = b''.join([chunk async for chunk in response.body_iterator])
        if rewrite:
            models = json.loads(body)
            for model in models.get('data', []):
                model['owned_by'] = owned_by
            body = json.dumps(models).encode()
        if verbose and request.method == 'POST':
            logger.info(f'response {path}: {body.decode("utf-8", "replace")}')
        headers = {k: v for k, v in response.headers.items() if k.lower() != 'content-length'}
        return Response(body, status_code=response.status_code, headers=headers, media_type=response.media_type)


def _asked_logprobs(path: str, raw: bytes) -> int | None:
    """How many top log-probabilities a request asks for: chat's ``top_logprobs``, completions' ``logprobs``."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # the server answers a body that is not JSON with its own 400
        return None
    if not isinstance(body, dict):
        return None
    value = body.get('top_logprobs' if path.endswith('/chat/completions') else 'logprobs')
    return value if isinstance(value, int) and not isinstance(value, bool) else None
