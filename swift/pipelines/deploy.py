"""``swift deploy``: serve a model, and any number of LoRA adapters on it, over an OpenAI-compatible HTTP API.

    swift deploy --adapters output/vx-xxx/checkpoint-xxx --temperature 0 --max_new_tokens 2048 \\
        --served_model_name my-model
    swift deploy --adapters lora1=output/run1/checkpoint-50 lora2=output/run2/checkpoint-50 --port 8000

A bare adapter path is applied to the served model, as in ``swift infer``; each ``name=path`` adapter is served
as a model of its own, sharing the base weights with the others.
"""
import os

import uvicorn

from ..arguments import DeployArguments
from ..infer.server import create_app
from ..utils import get_logger
from .common import apply_checkpoint_args, to_arguments
from .infer import build_engine, request_config

logger = get_logger()


def deploy_main(args: DeployArguments | list[str] | None = None) -> None:
    args = apply_checkpoint_args(to_arguments(DeployArguments, args))
    served_name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    with build_engine(args, args.adapter_mapping) as engine:  # vLLM's processes end with the server
        app = create_app(engine, served_name, list(args.adapter_mapping), api_key=args.api_key,
                         default_request_config=request_config(args), log_interval=args.log_interval)
        names = ', '.join([served_name, *args.adapter_mapping])
        logger.info(f'serving {names} on http://{args.host}:{args.port}/v1')
        uvicorn.run(app, host=args.host, port=args.port, log_level='info')
