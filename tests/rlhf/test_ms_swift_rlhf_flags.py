"""ms-swift behaviours and flags of ``swift rlhf`` beyond the core algorithms (issue 13), each on a tiny model."""
import os

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from swift.llm import rlhf_main
from swift.rlhf.kto import KTOArguments
from swift.rlhf.kto import make_trainer as make_kto_trainer

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data')
KTO = os.path.join(DATA, 'kto.jsonl')
COMMON = ['--report_to', 'none', '--dataloader_num_workers', '0', '--split_dataset_ratio', '0',
          '--learning_rate', '5e-4']


def test_kto_pairs_kl_answers_across_the_global_batch(qwen2_dir, tmp_path):
    """trl pairs each prompt with another answer of its per-device batch; with a batch of 1 we pair across the
    global batch (per device x accumulation x processes), as ms-swift does."""
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    rows = [{'prompt_ids': [1, 2], 'completion_ids': [10 + i], 'label': i % 2 == 0} for i in range(8)]
    training = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False,
                                 per_device_train_batch_size=1, gradient_accumulation_steps=4)
    trainer = make_kto_trainer(training, KTOArguments(), model=model, train_dataset=Dataset.from_list(rows),
                               processing_class=tokenizer)
    kl = [row['KL_completion_ids'][0] for row in trainer.train_dataset]
    assert kl == [13, 10, 11, 12, 17, 14, 15, 16]  # rotated within each block of 4 rows, never an answer's own
    assert trainer.args.per_device_train_batch_size == 1
    assert len(next(iter(trainer.get_train_dataloader()))['label']) == 1


def test_kto_trains_with_a_per_device_batch_of_one(qwen2_dir, tmp_path):
    result = rlhf_main(['--rlhf_type', 'kto', '--model', qwen2_dir, '--dataset', KTO, '--output_dir', str(tmp_path),
                        '--per_device_train_batch_size', '1', '--gradient_accumulation_steps', '4',
                        '--max_steps', '2', '--logging_steps', '1', *COMMON])
    losses = [record['loss'] for record in result['log_history'] if 'loss' in record]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
