"""Seed 000's GRPO command, shared by the test that runs it with transformers and the one that runs it with vLLM."""
import os

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
NUMINA = os.path.join(ROOT, 'examples', 'train', 'grpo', 'data', 'numina_math.jsonl')
PROMPT_TXT = os.path.join(ROOT, 'examples', 'train', 'grpo', 'prompt.txt')


def seed_grpo_argv(model: str, output_dir: str, max_completion_length: int = 1024) -> list[str]:
    """The command with only the model and the dataset swapped (8 rows instead of 1000, for time)."""
    return [
        'rlhf', '--rlhf_type', 'grpo', '--model', model, '--reward_funcs', 'accuracy', 'format',
        '--train_type', 'lora', '--lora_rank', '8', '--lora_alpha', '32', '--target_modules', 'all-linear',
        '--torch_dtype', 'bfloat16', '--dataset', f'{NUMINA}#8', '--max_completion_length', str(max_completion_length),
        '--num_train_epochs', '1', '--per_device_train_batch_size', '4', '--per_device_eval_batch_size', '4',
        '--learning_rate', '1e-5', '--gradient_accumulation_steps', '1', '--eval_steps', '100', '--save_steps', '100',
        '--save_total_limit', '2', '--logging_steps', '5', '--max_length', '2048', '--output_dir', output_dir,
        '--warmup_ratio', '0.05', '--dataloader_num_workers', '4', '--dataset_num_proc', '4', '--num_generations',
        '4', '--temperature', '0.9', '--system', PROMPT_TXT, '--log_completions', 'true', '--use_vllm', 'true',
        '--vllm_gpu_memory_utilization', '0.5', '--sleep_level', '1', '--offload_model', 'true',
        '--offload_optimizer', 'true', '--gc_collect_after_offload', 'true']
