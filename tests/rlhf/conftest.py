"""Fixtures the alignment tests share."""
import os

import pytest

from swift.llm import rlhf_main

PAIRS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data', 'pairs.jsonl')


@pytest.fixture(scope='session')
def reward_checkpoint(qwen2_dir, tmp_path_factory) -> str:
    """A reward model trained a few steps on the pairs, as a user trains one before PPO or GRPO."""
    rm = rlhf_main(['--rlhf_type', 'rm', '--model', qwen2_dir, '--dataset', PAIRS, '--split_dataset_ratio', '0',
                    '--report_to', 'none', '--dataloader_num_workers', '0', '--per_device_train_batch_size', '4',
                    '--max_steps', '3', '--learning_rate', '5e-4', '--output_dir', str(tmp_path_factory.mktemp('rm'))])
    return rm['last_model_checkpoint']
