"""Arguments of ``swift rollout``: the vLLM generation server that GRPO's ``--vllm_mode server`` talks to."""
from dataclasses import dataclass, field

from ..infer.arguments import VllmEngineArguments
from ..utils import SwiftError
from .base_args import ModelArguments, CommandArguments
from .deploy_args import check_port


@dataclass
class RolloutArguments(ModelArguments, VllmEngineArguments, CommandArguments):
    host: str = field(
        default='127.0.0.1', metadata={'help': 'Address to listen on (GRPO: --vllm_server_host); 0.0.0.0 opens it '
                                                'to the network, for trainers on other hosts.'})
    port: int = field(default=8000, metadata={'help': 'Port to listen on (GRPO: --vllm_server_port).'})

    def __post_init__(self):
        if not self.model:
            raise SwiftError('--model is required: a local folder or a hub id')
        check_port('--port', self.port)
        for flag in ('new_special_tokens', 'problem_type', 'rope_scaling', 'max_memory', 'init_strategy',
                     'experts_impl', 'bnb_4bit_quant_storage'):
            if getattr(self, flag):
                raise SwiftError(f'--{flag}: swift rollout serves --model as vLLM loads it; export a model with '
                                 'the change first')
        VllmEngineArguments.__post_init__(self)
