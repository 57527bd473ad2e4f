"""Adding an alignment algorithm is one file (tests/rlhf/toy_algorithm.py) and one registry line: its flags parse,
it trains, and its flag given to another algorithm is refused."""
import json

import pytest

from swift.llm import rlhf_main
from swift.rlhf import ALGORITHMS
from swift.utils import SwiftError

from .toy_algorithm import TOY


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(ALGORITHMS, 'toy', TOY)


def _pairs(tmp_path) -> str:
    path = tmp_path / 'pairs.jsonl'
    path.write_text(''.join(json.dumps({'prompt': f'say {i}', 'chosen': f'{i} {i} {i}', 'rejected': 'no'}) + '\n'
                            for i in range(8)))
    return str(path)


def _first_loss(qwen2_dir, tmp_path, *flags: str) -> float:
    result = rlhf_main(['--model', qwen2_dir, '--dataset', _pairs(tmp_path), '--max_steps', '2',
                        '--split_dataset_ratio', '0', '--logging_steps', '1', '--save_steps', '2',
                        '--output_dir', str(tmp_path / 'out'), *flags])
    losses = [r['loss'] for r in result['log_history'] if 'loss' in r]
    assert len(losses) == 2
    return losses[0]


def test_a_registered_algorithm_trains_with_its_own_flag(toy_registered, qwen2_dir, tmp_path):
    once = _first_loss(qwen2_dir, tmp_path, '--rlhf_type', 'toy')
    twice = _first_loss(qwen2_dir, tmp_path, '--rlhf_type', 'toy', '--toy_weight', '2')
    assert once > 0 and twice == pytest.approx(2 * once, rel=1e-5)  # the flag reached the loss


def test_its_flag_is_refused_by_the_other_algorithms(toy_registered, qwen2_dir, tmp_path):
    with pytest.raises(SwiftError, match='--toy_weight is read by --rlhf_type toy only, not by dpo'):
        rlhf_main(['--model', qwen2_dir, '--dataset', _pairs(tmp_path), '--rlhf_type', 'dpo', '--toy_weight', '2'])
