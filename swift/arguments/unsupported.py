"""ms-swift flags this build refuses, each with the one-line reason it gives (issue 13).

A flag of ms-swift's Command-line-parameters page (tests/data/ms_swift_flags.json) either acts here as it does in
ms-swift or is named below: the parser is to stop with ``--<flag>: <reason>`` (one line, exit 2) whenever the flag is
given, instead of failing as an unknown flag or being accepted and ignored. The reasons fall in five kinds: Megatron
only, Ascend NPU only, a CUDA-only kernel or library this build does not ship, a capability of another open issue
(14 multimodal, 15 seq_cls/embedding/reranker/agent, 16 eval/web UI/sampling, 17 multi-node, FSDP, sequence
parallelism, streaming), and a few ms-swift capabilities no issue covers yet ('not built yet: ...').

Flags whose action is planned and easy are not here: tests/data/ms_swift_flags_todo.md lists them.
"""

MEGATRON = 'Megatron-SWIFT only (mcore weights and converters); this build has no Megatron'
NPU = 'Ascend NPU only; this build runs on CPUs and CUDA GPUs'
MULTIMODAL = 'not built yet: multimodal models (issue 14)'
AGENT = 'not built yet: agent and multi-turn training (issue 15)'
QGALORE = 'Q-GaLore needs the q-galore-torch package and its CUDA kernels; this build has GaLore only (--use_galore)'
GRPO_TEACHER = 'not built yet: GRPO with a teacher model (OPD-RL, RLSD, SDAR)'
FIPO = 'not built yet: the FIPO loss (--loss_type fipo)'

UNSUPPORTED: dict[str, str] = {
    # ---- Megatron-SWIFT only
    'to_mcore': MEGATRON,
    'to_hf': MEGATRON,
    'mcore_model': MEGATRON,
    'mcore_adapter': MEGATRON,
    'thread_count': MEGATRON,
    'test_convert_precision': MEGATRON,
    'test_convert_dtype': MEGATRON,
    'offload_bridge': MEGATRON,
    # ---- NPU only
    'enable_npu_model_patch': NPU,
    # ---- CUDA-only kernels and libraries
    'galore_quantization': QGALORE,
    'galore_proj_quant': QGALORE,
    'galore_proj_bits': QGALORE,
    'galore_proj_group_size': QGALORE,
    'galore_cos_threshold': QGALORE,
    'galore_gamma_proj': QGALORE,
    'galore_queue_size': QGALORE,
    'deepspeed_autotp_size': 'DeepSpeed AutoTP (tensor parallelism) needs deepspeed and several CUDA GPUs; not built',
    'use_flash_ckpt': 'DLRover flash checkpoints need the dlrover package and CUDA; not built',
    'sglang_enable_ep_moe': 'removed from SGLang; use --sglang_ep_size',
    # ---- issue 14: multimodal models
    'max_pixels': MULTIMODAL,
    'norm_bbox': MULTIMODAL,
    'model_kwargs': MULTIMODAL + ': model-specific arguments are read by multimodal processors',
    'vllm_limit_mm_per_prompt': MULTIMODAL,
    'vllm_mm_processor_cache_gb': MULTIMODAL,
    'lmdeploy_vision_batch_size': MULTIMODAL,
    'is_multimodal': MULTIMODAL,
    # ---- issue 15: seq_cls, embedding, reranker, agent
    'multi_turn_scheduler': AGENT,
    'max_turns': AGENT,
    'gym_env': AGENT,
    'use_gym_env': AGENT,
    'completion_length_limit_scope': AGENT,
    'vllm_server_pass_dataset': AGENT,
    # ---- issue 17: multi-node, FSDP, sequence parallelism, streaming
    'sequence_parallel_size': 'not built yet: sequence parallelism (issue 17)',
    # accepted today as transformers' field, but ms-swift's fsdp2 presets are not there
    'fsdp': 'not built yet: FSDP2 (issue 17); use --deepspeed or NPROC_PER_NODE data parallelism',
    # training data only: swift sft and pt read a stream (ACTS_IN); rlhf parses them, and refuses --streaming true
    # in TrainArguments' check until its trainers read a stream (tests/data/ms_swift_flags_todo.md)
    'streaming': 'streams training data: swift sft and pt only',
    'shuffle_buffer_size': 'streams training data: swift sft and pt only',
    'zero_hpz_partition_size': 'not built yet: multi-node training, DeepSpeed ZeRO++ (issue 17)',
    'use_ray': 'not built yet: Ray multi-node orchestration (issue 17)',
    'ray_exp_name': 'not built yet: Ray multi-node orchestration (issue 17)',
    'device_groups': 'not built yet: Ray multi-node orchestration (issue 17)',
    # ---- ms-swift capabilities no open issue covers yet
    'hqq_axis': 'not built yet: HQQ quantization (--quant_method takes bnb here)',
    'async_generate': 'not built yet: asynchronous GRPO rollout',
    'enable_flattened_weight_sync': "not built yet: ms-swift's bucketed weight sync; GRPO syncs swift rollout "
                                    "through trl's client",
    'vllm_enable_lora': 'not built yet: syncing LoRA weights to vLLM as an adapter (GRPO and swift rollout)',
    'move_model_batches': "not built yet: batched weight moves to vLLM; GRPO syncs through trl",
    'fipo_decay_rate': FIPO,
    'fipo_clip_range': FIPO,
    'fipo_clip_high_only': FIPO,
    'fipo_safety_threshold': FIPO,
    'teacher_kl_coef': GRPO_TEACHER,
    'advantage_reweight': GRPO_TEACHER,
    'rlsd_lambda': GRPO_TEACHER,
    'rlsd_reweight_clip_range': GRPO_TEACHER,
    'rlsd_lambda_warmup_steps': GRPO_TEACHER,
    'rlsd_lambda_decay_steps': GRPO_TEACHER,
    'rlsd_negative_only': GRPO_TEACHER,
    'sdar_loss_coef': GRPO_TEACHER,
    'sdar_gate_beta': GRPO_TEACHER,
    'teacher_model_server': 'not built yet: GKD with a remote teacher served by swift deploy',
    'teacher_tag_key': 'not built yet: GKD with several remote teachers (--teacher_model_server)',
}

# Flags refused above that some commands do act on: the arguments classes (by name) that declare and use them.
ACTS_IN: dict[str, set[str]] = {
    'streaming': {'TrainArguments', 'RLHFArguments'},
    'shuffle_buffer_size': {'TrainArguments', 'RLHFArguments'},
}
