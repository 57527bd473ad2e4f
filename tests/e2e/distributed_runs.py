"""The trainings tests/e2e/test_distributed.py runs in one process and under torchrun: the same global batch of 4
rows per step (4 rows x 1 process, 2 rows x 2 processes) and the same seed, so the per-step losses must agree."""
import os

PAIRS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data', 'pairs.jsonl')
EXTRA = {'sft': [], 'zero2': ['--deepspeed', 'zero2'], 'zero3': ['--deepspeed', 'zero3']}


def common_argv(model: str, out: str, per_device: int) -> list[str]:
    return ['--model', model, '--output_dir', out, '--max_steps', '3', '--logging_steps', '1', '--save_steps', '3',
            '--split_dataset_ratio', '0', '--per_device_train_batch_size', str(per_device), '--seed', '7',
            '--dataloader_num_workers', '0', '--report_to', 'none', '--train_type', 'full']


def run(name: str, model: str, sft_rows: str, out: str, per_device: int) -> list[float]:
    """Train ``name`` (sft, dpo, zero2, zero3: sft under DeepSpeed) and return its per-step losses."""
    from swift.llm import rlhf_main, sft_main
    if name == 'dpo':
        result = rlhf_main(['--rlhf_type', 'dpo', '--dataset', PAIRS, '--learning_rate', '5e-4',
                            *common_argv(model, out, per_device)])
    else:
        result = sft_main(['--dataset', sft_rows, '--learning_rate', '1e-3', *common_argv(model, out, per_device),
                           *EXTRA[name]])
    return [record['loss'] for record in result['log_history'] if 'loss' in record]
