"""GKD: the generalised JSD against a hand computation, distillation of a tiny student towards a different random
teacher of the same vocabulary, the teacher checks, and inference on the checkpoint."""
import json
import math
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from swift.llm import rlhf_main
from swift.rlhf.gkd import cut_at_stop, generalized_jsd_loss, shared_vocab_size
from swift.utils import SwiftError
from swift.utils.tiny_models import build_tiny_model
from tests.conftest import run_swift

PAIRS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data', 'pairs.jsonl')

# Two rows of two positions over a 3-token vocabulary; the second position of row 2 is padding.
STUDENT = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], [[2.0, -1.0, 0.0], [9.0, 9.0, 9.0]]])
TEACHER = torch.tensor([[[0.0, 2.0, 0.0], [0.5, 0.5, 0.0]], [[-1.0, 0.0, 3.0], [0.0, 0.0, 0.0]]])
MASK = torch.tensor([[1, 1], [1, 0]])


def _softmax(logits: list[float], temperature: float) -> list[float]:
    exps = [math.exp(x / temperature) for x in logits]
    return [e / sum(exps) for e in exps]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _jsd_by_hand(student: list[float], teacher: list[float], beta: float, temperature: float) -> float:
    s, t = _softmax(student, temperature), _softmax(teacher, temperature)
    if beta == 0:
        return _kl(t, s)  # forward KL: teacher || student
    if beta == 1:
        return _kl(s, t)  # reverse KL: student || teacher
    m = [beta * ti + (1 - beta) * si for si, ti in zip(s, t)]
    return beta * _kl(t, m) + (1 - beta) * _kl(s, m)


@pytest.mark.parametrize('beta', [0.0, 0.5, 1.0])
@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_generalized_jsd_by_hand(beta, temperature):
    loss = generalized_jsd_loss(STUDENT, TEACHER, MASK, beta=beta, temperature=temperature)
    # The mean over the three completion tokens; the padded position (very different logits) must not count.
    positions = [(0, 0), (0, 1), (1, 0)]
    expected = sum(_jsd_by_hand(STUDENT[i, j].tolist(), TEACHER[i, j].tolist(), beta, temperature)
                   for i, j in positions) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.01  # the positions differ: a loss of 0 would pass only by accident


def test_identical_distributions_cost_nothing():
    for beta in (0.0, 0.3, 1.0):
        assert generalized_jsd_loss(STUDENT, STUDENT.clone(), MASK, beta=beta).item() == pytest.approx(0, abs=1e-6)


def test_sampled_completions_end_at_their_first_stop_token():
    tokens = torch.tensor([[5, 7, 2, 9, 2], [4, 4, 4, 4, 4]])
    cut, mask = cut_at_stop(tokens, stop_ids=[2, 3], pad_token_id=0)
    assert cut.tolist() == [[5, 7, 2, 0, 0], [4, 4, 4, 4, 4]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory) -> str:
    """Another random model with the student's tokenizer: wider, and seeded differently."""
    return build_tiny_model(str(tmp_path_factory.mktemp('teacher')), 'qwen2', hidden_size=128, seed=1)


def _gkd(student_dir: str, teacher_dir: str, output_dir, *extra: str) -> dict:
    return rlhf_main(['--rlhf_type', 'gkd', '--model', student_dir, '--teacher_model', teacher_dir,
                      '--dataset', PAIRS, '--split_dataset_ratio', '0.25', '--max_completion_length', '8',
                      '--per_device_train_batch_size', '4', '--logging_steps', '1', '--report_to', 'none',
                      '--dataloader_num_workers', '0', '--output_dir', str(output_dir), *extra])


@pytest.mark.parametrize('train_type, learning_rate, ratio', [('lora', '5e-3', 0.9), ('full', '2e-3', 0.6)])
def test_the_student_moves_towards_the_teacher(qwen2_dir, teacher_dir, tmp_path, train_type, learning_rate, ratio):
    result = _gkd(qwen2_dir, teacher_dir, tmp_path, '--lmbda', '0.5', '--train_type', train_type, '--learning_rate',
                  learning_rate, '--max_steps', '10', '--eval_steps', '10', '--save_steps', '10',
                  '--eval_on_start', 'true')
    # The held-out divergence to the teacher (on the dataset's answers), before and after. Both tiny models are
    # near-uniform, so it starts small (~0.01); rank-8 LoRA on 64 hidden units closes less of it than full training.
    evals = [r['eval_loss'] for r in result['log_history'] if 'eval_loss' in r]
    assert evals[-1] < ratio * evals[0], evals
    logged = [json.loads(line) for line in open(os.path.join(result['run_dir'], 'logging.jsonl'))]
    steps = [r for r in logged if 'loss' in r and 'on_policy' in r]
    # lmbda 0.5: some steps trained on the student's samples, the others on the dataset's answers
    assert {r['on_policy'] for r in steps} == {0.0, 1.0}
    assert all(r['completion_length'] <= 8 for r in steps if r['on_policy'])
    assert 'train_loss.png' in os.listdir(os.path.join(result['run_dir'], 'images'))
    if train_type == 'lora':  # swift infer on the checkpoint, as after swift sft
        infer = run_swift('infer', '--adapters', result['last_model_checkpoint'], '--max_new_tokens', '8',
                          '--temperature', '0', input='What do you think about tea?\nexit\n')
        assert infer.returncode == 0, infer.stderr[-2000:]
        assert os.path.isfile(os.path.join(result['last_model_checkpoint'], 'args.json'))


def test_seq_kd_trains_on_teacher_samples(qwen2_dir, teacher_dir, tmp_path):
    result = _gkd(qwen2_dir, teacher_dir, tmp_path, '--lmbda', '0', '--seq_kd', 'true', '--max_steps', '2',
                  '--save_strategy', 'no', '--split_dataset_ratio', '0', '--max_completion_length', '3')
    steps = [r for r in result['log_history'] if 'on_policy' in r]
    assert [r['on_policy'] for r in steps] == [0.0, 0.0]
    # The dataset's answers are longer than 3 tokens: these completions were sampled.
    assert all(r['completion_length'] <= 3 for r in steps)


def test_a_teacher_with_another_vocabulary_is_a_one_line_error(qwen2_dir, tmp_path):
    other = build_tiny_model(str(tmp_path / 'other'), 'qwen2', vocab_size=500)
    proc = run_swift('rlhf', '--rlhf_type', 'gkd', '--model', qwen2_dir, '--teacher_model', other,
                     '--dataset', PAIRS, '--output_dir', str(tmp_path / 'out'))
    assert proc.returncode == 2
    assert f'--teacher_model {other}: its tokenizer' in proc.stderr and 'Traceback' not in proc.stderr
    # The logit widths are checked too: a model narrower than the tokenizer cannot score every token.
    student, teacher = (AutoModelForCausalLM.from_pretrained(d) for d in (qwen2_dir, other))
    with pytest.raises(SwiftError, match='does not share the student'):
        shared_vocab_size(student, teacher, tokenizer_size=student.config.vocab_size)


@pytest.mark.parametrize('flags, message', [
    ([], '--rlhf_type gkd needs --teacher_model'),
    (['--teacher_model', 'x', '--lmbda', '1.5'], '--lmbda must lie in [0, 1]'),
    (['--teacher_model', 'x', '--beta', '-0.1'], '--beta must lie in [0, 1]'),
])
def test_bad_settings_are_refused(qwen2_dir, flags, message):
    with pytest.raises(SwiftError, match=message.replace('[', r'\[').replace(']', r'\]')):
        rlhf_main(['--rlhf_type', 'gkd', '--model', qwen2_dir, '--dataset', PAIRS, *flags])
