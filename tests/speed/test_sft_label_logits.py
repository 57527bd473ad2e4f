"""Logits of labelled positions only (swift/trainers/label_logits.py): the same losses, gradient norms and accuracy
step by step as the full-logits loss on a fixed seed, while the LM head really computes fewer rows."""
import json

import pytest

from swift.llm import sft_main
from swift.trainers import trainer as trainer_module


def _rows(path) -> str:
    with open(path, 'w') as f:
        for i in range(8):  # multi-turn rows of different lengths: prompt turns, answers and padding interleave
            messages = [{'role': 'system', 'content': 'You add numbers.'}]
            for turn in range(1 + i % 3):
                messages += [{'role': 'user', 'content': f'what is {i} plus {turn}?' + ' please' * i},
                             {'role': 'assistant', 'content': f'{i} plus {turn} is {i + turn}.'}]
            f.write(json.dumps({'messages': messages}) + '\n')
    return str(path)


def _train(model_dir, tmp_path, name, label_only: bool, extra, monkeypatch, head_rows: list) -> list[dict]:
    monkeypatch.setattr(trainer_module.SwiftTrainer, 'label_logits_only', label_only)
    real = trainer_module.head_on_positions

    def spy(head, positions):  # records the rows the LM head computed
        handle = head.register_forward_hook(lambda m, args, out: head_rows.append((out.dim(), int(positions.sum()))))
        try:
            with real(head, positions):
                yield
        finally:
            handle.remove()
    monkeypatch.setattr(trainer_module, 'head_on_positions', __import__('contextlib').contextmanager(spy))
    result = sft_main(['--model', model_dir, '--dataset', _rows(tmp_path / 'rows.jsonl'),
                       '--output_dir', str(tmp_path / name), '--max_steps', '4', '--logging_steps', '1',
                       '--split_dataset_ratio', '0', '--per_device_train_batch_size', '3', '--save_steps', '1000',
                       '--dataloader_num_workers', '0', '--learning_rate', '1e-3', '--seed', '7', *extra])
    return [r for r in result['log_history'] if 'loss' in r]


@pytest.mark.parametrize('extra', [
    ['--acc_strategy', 'token'],
    ['--padding_free', 'true', '--acc_strategy', 'seq', '--enable_dft_loss', 'true'],
], ids=['padded', 'padding_free_dft_seq'])
def test_label_positions_give_the_full_logits_losses(qwen2_dir, tmp_path, monkeypatch, extra):
    head_rows = []
    fast = _train(qwen2_dir, tmp_path, 'on', True, extra, monkeypatch, head_rows)
    assert head_rows and all(dim == 2 for dim, _ in head_rows)  # (labelled positions, vocabulary) logits
    full = _train(qwen2_dir, tmp_path, 'off', False, extra, monkeypatch, [])
    assert len(fast) == len(full) == 4
    acc = 'token_acc' if 'token' in extra else 'seq_acc'
    for a, b in zip(fast, full):
        assert a['loss'] == pytest.approx(b['loss'], rel=1e-5)
        assert a['grad_norm'] == pytest.approx(b['grad_norm'], rel=1e-4)
        assert a[acc] == b[acc]
    assert fast[-1]['loss'] != fast[0]['loss']  # it trained
