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

# ---- flags of ms-swift's commands that one command here has no use for: refused there, acting in the others
# (ACTS_IN below names the arguments groups that declare and use them)
ROLLOUT = ("swift rollout runs trl's vLLM server on --model as it is, sampling as each trainer request says: this "
           'flag has no use there')
ROLLOUT_VLLM = 'swift rollout serves with vLLM only'
SERVER = ("a swift deploy server setting: swift app serves the model in-process and swift rollout runs trl's vLLM "
          'server, neither has it')
APP_SERVER = ('swift app serves the model in-process, without a swift deploy server (its page: --server_name, '
              '--server_port)')
GENERATION = ('a generation setting of swift infer, deploy, app, eval and sample: training evaluates without '
              'generating (predict_with_generate is not built), export does not generate, and swift rollout takes '
              "each trainer request's")
ROLLOUT_FLAGS = {  # the group that declares them -> the flags swift rollout refuses
    'BaseArguments': (
        'adapters', 'seed', 'load_args', 'load_data_args', 'dataset', 'val_dataset', 'split_dataset_ratio',
        'data_seed', 'dataset_num_proc', 'dataset_shuffle', 'columns', 'strict', 'model_name', 'model_author',
        'custom_dataset_info', 'template', 'system', 'max_length', 'max_model_len', 'truncation_strategy',
        'use_chat_template', 'padding_free', 'loss_scale', 'agent_template', 'packing', 'lazy_tokenize',
        'add_non_thinking_prefix', 'disable_auto_column_mapping', 'enable_thinking', 'interleave_prob',
        'is_binary_loss_scale', 'load_from_cache_file', 'preserve_thinking', 'response_prefix', 'stopping_strategy',
        'template_backend', 'val_dataset_shuffle'),
    'InferArguments': ('infer_backend', 'max_batch_size', 'merge_lora', 'result_path', 'write_batch_size', 'metric',
                       'val_dataset_sample', 'reranker_use_activation'),
}
ROLLOUT_ENGINE_FLAGS = {
    'SglangArguments': (
        'sglang_tp_size', 'sglang_pp_size', 'sglang_dp_size', 'sglang_ep_size', 'sglang_mem_fraction_static',
        'sglang_context_length', 'sglang_disable_cuda_graph', 'sglang_quantization', 'sglang_kv_cache_dtype',
        'sglang_enable_dp_attention', 'sglang_disable_custom_all_reduce', 'sglang_speculative_algorithm',
        'sglang_speculative_num_steps', 'sglang_speculative_eagle_topk', 'sglang_speculative_num_draft_tokens'),
    'LmdeployArguments': ('lmdeploy_tp', 'lmdeploy_session_len', 'lmdeploy_cache_max_entry_count',
                          'lmdeploy_quant_policy'),
}
SERVER_FLAGS = ('api_key', 'owned_by', 'served_model_name', 'verbose', 'log_interval', 'max_logprobs')
GENERATION_FLAGS = ('max_new_tokens', 'temperature', 'top_k', 'top_p', 'repetition_penalty', 'stop_words', 'stream',
                    'logprobs', 'top_logprobs')
for _names in ROLLOUT_FLAGS.values():
    UNSUPPORTED.update(dict.fromkeys(_names, ROLLOUT))
for _names in ROLLOUT_ENGINE_FLAGS.values():
    UNSUPPORTED.update(dict.fromkeys(_names, ROLLOUT_VLLM))
# GRPO's colocated vLLM is trl's, which takes only the flags of VllmArguments
GRPO_VLLM_FLAGS = ('vllm_pipeline_parallel_size', 'vllm_data_parallel_size', 'vllm_enable_expert_parallel',
                   'vllm_disable_custom_all_reduce', 'vllm_quantization', 'vllm_disable_cascade_attn',
                   'vllm_speculative_config', 'vllm_engine_kwargs', 'vllm_use_async_engine')
UNSUPPORTED.update(dict.fromkeys(GRPO_VLLM_FLAGS, "GRPO's colocated vLLM is trl's, which does not take it; swift "
                                                  'rollout does (--vllm_mode server)'))
UNSUPPORTED['vllm_reasoning_parser'] = "not built yet: answers' reasoning_content split out by vLLM's reasoning parser"
UNSUPPORTED['base_url'] = 'not built yet: swift app as the client of a running swift deploy (--base_url)'
UNSUPPORTED.update({**dict.fromkeys(SERVER_FLAGS, SERVER), **dict.fromkeys(('host', 'port'), APP_SERVER),
                    **dict.fromkeys(GENERATION_FLAGS, GENERATION)})

# Flags refused above that some commands do act on: the arguments classes (by name) that declare and use them.
ACTS_IN: dict[str, set[str]] = {
    **{name: {owner} for groups in (ROLLOUT_FLAGS, ROLLOUT_ENGINE_FLAGS) for owner, names in groups.items()
       for name in names},
    **dict.fromkeys(SERVER_FLAGS, {'DeployArguments'}),
    **dict.fromkeys(GRPO_VLLM_FLAGS, {'VllmEngineArguments'}),
    **dict.fromkeys(('host', 'port'), {'DeployArguments', 'RolloutArguments'}),
    # GRPO and GKD sample with temperature, top_k, top_p and repetition_penalty (their SamplingArguments)
    **{name: {'GenerationArguments', 'SamplingArguments'} if name in ('temperature', 'top_k', 'top_p',
                                                                     'repetition_penalty') else {'GenerationArguments'}
       for name in GENERATION_FLAGS},
    'streaming': {'TrainArguments', 'RLHFArguments'},
    'shuffle_buffer_size': {'TrainArguments', 'RLHFArguments'},
    'merge_lora': {'InferArguments', 'ExportArguments'},  # swift export --merge_lora merges too
}
