"""Arguments of ``swift rollout``: the vLLM generation server that GRPO's ``--vllm_mode server`` talks to."""
from dataclasses import dataclass, field

from ..infer.arguments import VllmArguments
from ..utils import SwiftError
from .base_args import ModelArguments
from .deploy_args import check_port


@dataclass
class RolloutArguments(ModelArguments, VllmArguments):
    host: str = field(default='0.0.0.0', metadata={'help': 'Address to listen on (GRPO: --vllm_server_host).'})
    port: int = field(default=8000, metadata={'help': 'Port to listen on (GRPO: --vllm_server_port).'})
    vllm_data_parallel_size: int = field(default=1, metadata={'help': 'Model copies serving in parallel.'})

    def __post_init__(self):
        if not self.model:
            raise SwiftError('--model is required: a local folder or a hub id')
        check_port('--port', self.port)
        for flag in ('new_special_tokens', 'problem_type', 'rope_scaling', 'max_memory', 'init_strategy',
                     'experts_impl', 'bnb_4bit_quant_storage'):
            if getattr(self, flag):
                raise SwiftError(f'--{flag}: swift rollout serves --model as vLLM loads it; export a model with '
                                 'the change first')
        VllmArguments.__post_init__(self)
        if self.vllm_data_parallel_size < 1:
            raise SwiftError(f'--vllm_data_parallel_size must be at least 1, got {self.vllm_data_parallel_size}')
