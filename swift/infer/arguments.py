"""The engines' flags (ms-swift's names), declared beside the engines that read them: vLLM's for
``--infer_backend vllm`` and ``swift rollout``; SGLang's and LMDeploy's for their backends. Data only, composed into
each command's arguments; each engine takes its group as it is (``VllmEngine(model, template, VllmArguments(...))``)
or single flags by keyword, the flag without its engine prefix being ms-swift's engine keyword (``max_model_len``
for ``--vllm_max_model_len``)."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils.errors import SwiftError, check_fraction, json_object


@dataclass
class VllmArguments:
    vllm_gpu_memory_utilization: Optional[float] = field(
        default=None, metadata={'help': "Share of GPU memory vLLM takes (0.9 when unset); on vLLM's CPU build, the "
                                        'share of host memory it reserves (0.2 when unset).'})
    vllm_tensor_parallel_size: int = field(default=1, metadata={'help': 'GPUs one vLLM model is split over.'})
    vllm_max_num_seqs: int = field(
        default=256, metadata={'help': "Most sequences vLLM generates at once (swift rollout: vLLM's server picks its "
                                       'own unless this is changed).'})
    vllm_max_model_len: Optional[int] = field(
        default=None, metadata={'help': "vLLM's context length; the model's own when unset."})
    vllm_enforce_eager: bool = field(default=False, metadata={'help': 'Run vLLM without CUDA graphs.'})
    vllm_max_lora_rank: int = field(
        default=16, metadata={'help': "Largest LoRA rank vLLM reserves room for; raised to the adapters' own."})
    vllm_enable_prefix_caching: Optional[bool] = field(
        default=None, metadata={'help': "Reuse the KV cache of shared prompt prefixes (default: vLLM's choice)."})

    def __post_init__(self):
        check_fraction('vllm_gpu_memory_utilization', self.vllm_gpu_memory_utilization)
        for flag in ('vllm_tensor_parallel_size', 'vllm_max_num_seqs', 'vllm_max_lora_rank'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')


@dataclass
class VllmEngineArguments(VllmArguments):
    """The vLLM flags that only swift's own vLLM engine and swift rollout pass on: GRPO's colocated vLLM is trl's,
    which takes the ones above."""
    vllm_pipeline_parallel_size: int = field(default=1, metadata={'help': 'Pipeline stages one vLLM model spans.'})
    vllm_data_parallel_size: int = field(default=1, metadata={'help': 'Model copies vLLM serves in parallel.'})
    vllm_enable_expert_parallel: bool = field(
        default=False, metadata={'help': "Spread an MoE model's experts over the GPUs (vLLM expert parallelism)."})
    vllm_disable_custom_all_reduce: bool = field(
        default=True, metadata={'help': "Use NCCL's all-reduce instead of vLLM's custom kernel."})
    vllm_quantization: Optional[str] = field(
        default=None, metadata={'help': "vLLM's quantization method for the weights, e.g. fp8 or awq."})
    vllm_disable_cascade_attn: bool = field(default=False, metadata={'help': "Turn off vLLM's cascade attention."})
    vllm_speculative_config: Optional[str] = field(
        default=None, metadata={'help': "vLLM's speculative decoding settings, a JSON object such as "
                                        '\'{"method": "ngram", "num_speculative_tokens": 3}\'.'})
    vllm_engine_kwargs: Optional[str] = field(
        default=None, metadata={'help': "Further vLLM engine arguments, a JSON object of vLLM's own names; they win "
                                        'over the flags above.'})
    vllm_use_async_engine: Optional[bool] = field(
        default=None, metadata={'help': "ms-swift chooses vLLM's async or offline engine with it; swift always drives "
                                        "vLLM's async engine, whose answers are the same, so either value runs."})

    def __post_init__(self):
        VllmArguments.__post_init__(self)
        self.vllm_speculative_config = json_object('--vllm_speculative_config', self.vllm_speculative_config,
                                                   'of speculative decoding settings')
        self.vllm_engine_kwargs = json_object('--vllm_engine_kwargs', self.vllm_engine_kwargs,
                                              'of vLLM engine arguments') or {}
        for flag in ('vllm_pipeline_parallel_size', 'vllm_data_parallel_size'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')

    def engine_options(self) -> dict:
        """vLLM engine arguments of the flags that pass straight through, --vllm_engine_kwargs last (its names
        win)."""
        return {'pipeline_parallel_size': self.vllm_pipeline_parallel_size,
                'data_parallel_size': self.vllm_data_parallel_size,
                'enable_expert_parallel': self.vllm_enable_expert_parallel,
                'disable_custom_all_reduce': self.vllm_disable_custom_all_reduce,
                'quantization': self.vllm_quantization, 'disable_cascade_attn': self.vllm_disable_cascade_attn,
                'speculative_config': self.vllm_speculative_config, **self.vllm_engine_kwargs}


@dataclass
class SglangArguments:
    sglang_tp_size: int = field(default=1, metadata={'help': 'GPUs one SGLang model is split over (tensor parallel).'})
    sglang_pp_size: int = field(default=1, metadata={'help': 'SGLang pipeline-parallel stages.'})
    sglang_dp_size: int = field(default=1, metadata={'help': 'SGLang data-parallel replicas of the model.'})
    sglang_ep_size: int = field(default=1, metadata={'help': 'SGLang expert-parallel size (MoE models).'})
    sglang_mem_fraction_static: Optional[float] = field(
        default=None, metadata={'help': "Share of GPU memory for weights and KV cache; SGLang's choice when unset."})
    sglang_context_length: Optional[int] = field(
        default=None, metadata={'help': "SGLang's context length; the model's own when unset."})
    sglang_disable_cuda_graph: bool = field(default=False, metadata={'help': 'Run SGLang without CUDA graphs.'})
    sglang_quantization: Optional[str] = field(
        default=None, metadata={'help': "SGLang's quantization method, e.g. fp8 or awq."})
    sglang_kv_cache_dtype: str = field(default='auto', metadata={'help': 'KV cache dtype, e.g. fp8_e5m2.'})
    sglang_enable_dp_attention: bool = field(default=False, metadata={'help': 'Data-parallel attention.'})
    sglang_disable_custom_all_reduce: bool = field(
        default=True, metadata={'help': "Use NCCL instead of SGLang's custom all-reduce kernel."})
    sglang_speculative_algorithm: Optional[str] = field(
        default=None, metadata={'help': 'Speculative decoding algorithm, e.g. EAGLE, EAGLE3 or NEXTN.'})
    sglang_speculative_num_steps: Optional[int] = field(
        default=None, metadata={'help': 'Draft-model steps per speculative round.'})
    sglang_speculative_eagle_topk: Optional[int] = field(
        default=None, metadata={'help': 'Tokens the draft model proposes at each step (EAGLE top-k).'})
    sglang_speculative_num_draft_tokens: Optional[int] = field(
        default=None, metadata={'help': 'Draft tokens verified per speculative round.'})

    def __post_init__(self):
        check_fraction('sglang_mem_fraction_static', self.sglang_mem_fraction_static)
        for flag in ('sglang_tp_size', 'sglang_pp_size', 'sglang_dp_size', 'sglang_ep_size'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')


@dataclass
class LmdeployArguments:
    lmdeploy_tp: int = field(default=1, metadata={'help': 'GPUs one LMDeploy model is split over.'})
    lmdeploy_session_len: Optional[int] = field(
        default=None, metadata={'help': "LMDeploy's context length; the model's own when unset."})
    lmdeploy_cache_max_entry_count: float = field(
        default=0.8, metadata={'help': 'Share of free GPU memory LMDeploy gives the KV cache.'})
    lmdeploy_quant_policy: int = field(
        default=0, metadata={'help': 'KV cache quantization: 0 none, 4 or 8 bits.'})

    def __post_init__(self):
        if self.lmdeploy_tp < 1:
            raise SwiftError(f'--lmdeploy_tp must be at least 1, got {self.lmdeploy_tp}')
        check_fraction('lmdeploy_cache_max_entry_count', self.lmdeploy_cache_max_entry_count)
        if self.lmdeploy_quant_policy not in (0, 4, 8):
            raise SwiftError(f'--lmdeploy_quant_policy must be 0, 4 or 8, got {self.lmdeploy_quant_policy}')
