"""Each alignment loss against a hand computation on fixed log-probabilities.

CPO, SimPO, ORPO and CHORD's pieces are our own functions: checked on fixed numbers. DPO, KTO and RM run trl's trainers on a tiny
model whose adapter has been moved off zero, so the policy and the reference differ; the expected loss is worked
out here from log-probabilities of a plain forward pass.
"""
import math

import pytest
import torch
from datasets import Dataset
from peft import get_peft_model, LoraConfig
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from swift.rlhf.cpo import cpo_loss
from swift.rlhf.dpo import DPOArguments
from swift.rlhf.dpo import make_trainer as make_dpo_trainer
from swift.rlhf.grpo_losses import chord_mu, chord_sft_loss
from swift.rlhf.kto import KTOArguments
from swift.rlhf.kto import make_trainer as make_kto_trainer
from swift.rlhf.orpo import orpo_loss
from swift.rlhf.preference import AnswerLogps, answer_logps
from swift.rlhf.rm import RMArguments
from swift.rlhf.rm import make_trainer as make_rm_trainer
from swift.rlhf.simpo import simpo_loss

# Two pairs: summed log-probabilities of the chosen and rejected answers, and their lengths in tokens.
LOGPS = AnswerLogps(chosen=torch.tensor([-4.0, -9.0]), rejected=torch.tensor([-6.0, -8.0]),
                    chosen_tokens=torch.tensor([2.0, 3.0]), rejected_tokens=torch.tensor([3.0, 2.0]))


def _neg_logsigmoid(x: float) -> float:
    return math.log(1 + math.exp(-x))


def test_cpo_loss_by_hand():
    result = cpo_loss(LOGPS, beta=0.5, cpo_alpha=1.0)
    # pair 1: -log sigmoid(0.5 * (-4 + 6)) + 1.0 * (4 / 2); pair 2: -log sigmoid(0.5 * (-9 + 8)) + 9 / 3
    expected = [_neg_logsigmoid(1.0) + 2.0, _neg_logsigmoid(-0.5) + 3.0]
    assert result.loss.tolist() == pytest.approx(expected)
    assert result.chosen_rewards.tolist() == pytest.approx([-2.0, -4.5])
    assert result.rejected_rewards.tolist() == pytest.approx([-3.0, -4.0])


def test_simpo_loss_by_hand():
    result = simpo_loss(LOGPS, beta=2.0, gamma=0.5, cpo_alpha=0.0)
    # mean log-probs: chosen -2, -3; rejected -2, -4. pair 1: -log sigmoid(2 * (-2 + 2) - 0.5)
    expected = [_neg_logsigmoid(-0.5), _neg_logsigmoid(2.0 * (-3 + 4) - 0.5)]
    assert result.loss.tolist() == pytest.approx(expected)
    assert result.chosen_rewards.tolist() == pytest.approx([-4.0, -6.0])
    with_sft = simpo_loss(LOGPS, beta=2.0, gamma=0.5, cpo_alpha=0.5)
    assert (with_sft.loss - result.loss).tolist() == pytest.approx([0.5 * 2.0, 0.5 * 3.0])


def test_orpo_loss_by_hand():
    result = orpo_loss(LOGPS, beta=0.25)
    expected = []
    for chosen_mean, rejected_mean in [(-2.0, -2.0), (-3.0, -4.0)]:
        p_c, p_r = math.exp(chosen_mean), math.exp(rejected_mean)
        log_odds_ratio = math.log(p_c / (1 - p_c)) - math.log(p_r / (1 - p_r))
        expected.append(-chosen_mean + 0.25 * _neg_logsigmoid(log_odds_ratio))
    assert result.loss.tolist() == pytest.approx(expected)


def test_answer_logps_sum_only_the_answer_tokens():
    logits = torch.randn(2, 4, 5)
    input_ids = torch.tensor([[1, 2, 3, 4], [1, 2, 0, 3]])
    completion_mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])  # row 0 chosen, row 1 rejected
    logps = answer_logps(logits, input_ids, completion_mask)
    log_probs = torch.log_softmax(logits, -1)
    assert logps.chosen.item() == pytest.approx((log_probs[0, 1, 3] + log_probs[0, 2, 4]).item(), rel=1e-5)
    assert logps.rejected.item() == pytest.approx((log_probs[1, 0, 2] + log_probs[1, 1, 0]).item(), rel=1e-5)
    assert logps.chosen_tokens.item() == 2 and logps.rejected_tokens.item() == 2


def test_chord_mu_warms_up_linearly_then_decays_along_a_cosine():
    schedule = dict(warmup_steps=2, decay_steps=4, peak=0.8, valley=0.2)
    # warm-up: 0, 0.4; peak at step 2; half-way through the decay cos(pi/2) = 0: the mid-point 0.5; then the valley
    assert [chord_mu(step, **schedule) for step in (0, 1, 2, 4, 6, 50)] == pytest.approx([0, 0.4, 0.8, 0.5, 0.2, 0.2])
    assert chord_mu(3, **schedule) == pytest.approx(0.2 + 0.6 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert chord_mu(0, warmup_steps=0, decay_steps=0, peak=0.3, valley=0.3) == 0.3  # a constant mu


# Two logits per position: [0, ln 3] gives token 1 probability 3/4, [0, 0] gives 1/2. Row 0 predicts labels 1, 0, 1
# (probabilities 3/4, 1/4, 1/2); row 1 has no expert token, so it adds nothing and counts for nothing.
SFT_LOGITS = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)], [0.0, 0.0], [5.0, -5.0]],
                           [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]])
SFT_LABELS = torch.tensor([[-100, 1, 0, 1], [-100, -100, -100, -100]])


def test_chord_sft_loss_is_the_mean_nll_of_the_expert_tokens():
    expected = (math.log(4 / 3) + math.log(4) + math.log(2)) / 3
    assert chord_sft_loss(SFT_LOGITS, SFT_LABELS, phi=False).item() == pytest.approx(expected)


def test_chord_phi_weights_each_token_by_p_times_1_minus_p_held_constant():
    expected = (3 / 16 * math.log(4 / 3) + 3 / 16 * math.log(4) + 1 / 4 * math.log(2)) / 3
    assert chord_sft_loss(SFT_LOGITS, SFT_LABELS, phi=True).item() == pytest.approx(expected)
    # One token, logits [0, z], label 1: d(-log p)/dz = -(1 - p). The weight p(1 - p) is a constant factor, so the
    # gradient is -p(1 - p)^2 (if the weight were differentiated too, it would not be).
    logits = torch.tensor([[[0.0, 0.5], [0.0, 0.0]]], requires_grad=True)
    chord_sft_loss(logits, torch.tensor([[-100, 1]]), phi=True).backward()
    p = 1 / (1 + math.exp(-0.5))
    assert logits.grad[0, 0, 1].item() == pytest.approx(-p * (1 - p) ** 2)


# ---- trl's trainers on a tiny model --------------------------------------------------------------------------
PROMPT, CHOSEN, REJECTED = [1, 2, 3], [4, 5, 6], [7, 8]


@pytest.fixture(scope='module')
def tokenizer(qwen2_dir):
    return AutoTokenizer.from_pretrained(qwen2_dir)


def _policy(model_dir: str, seed: int = 0):
    """A LoRA model whose B matrices are random, so that it differs from its base (the reference)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules='all-linear', lora_dropout=0.0))
    for name, param in model.named_parameters():
        if 'lora_B' in name:
            param.data.normal_(std=0.5)
    return model


def _training_args(tmp_path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=2,
                             remove_unused_columns=False)


def _answer_logp(model, prompt: list[int], answer: list[int]) -> float:
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(log_probs[len(prompt) + i - 1, token].item() for i, token in enumerate(answer))


def _policy_and_reference_logps(model, answers: list[list[int]]) -> tuple[list[float], list[float]]:
    policy = [_answer_logp(model, PROMPT, answer) for answer in answers]
    with model.disable_adapter():
        reference = [_answer_logp(model, PROMPT, answer) for answer in answers]
    return policy, reference


@pytest.mark.parametrize('loss_type, rpo_alpha', [(['sigmoid'], None), (['ipo'], None), (['hinge'], None),
                                                  (['sigmoid'], 0.5)])
def test_dpo_loss_by_hand(qwen2_dir, tokenizer, tmp_path, loss_type, rpo_alpha):
    model = _policy(qwen2_dir)
    beta = 0.2
    rows = [{'prompt_ids': PROMPT, 'chosen_ids': CHOSEN, 'rejected_ids': REJECTED}]
    trainer = make_dpo_trainer(_training_args(tmp_path), DPOArguments(beta=beta, loss_type=loss_type,
                                                                             rpo_alpha=rpo_alpha),
                               model=model, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = trainer.data_collator(rows)
    model.eval()  # no dropout: the hand computation is deterministic
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()

    (chosen, rejected), (ref_chosen, ref_rejected) = _policy_and_reference_logps(model, [CHOSEN, REJECTED])
    delta = (chosen - ref_chosen) - (rejected - ref_rejected)
    if loss_type == ['sigmoid']:
        expected = _neg_logsigmoid(beta * delta)
    elif loss_type == ['ipo']:  # trl normalises each log-ratio by its answer length
        delta_per_token = (chosen - ref_chosen) / len(CHOSEN) - (rejected - ref_rejected) / len(REJECTED)
        expected = (delta_per_token - 1 / (2 * beta)) ** 2
    else:
        expected = max(0.0, 1 - beta * delta)
    if rpo_alpha:  # plus the mean NLL of the chosen answer
        expected += rpo_alpha * -chosen / len(CHOSEN)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_kto_loss_by_hand(qwen2_dir, tokenizer, tmp_path):
    model = _policy(qwen2_dir, seed=1)
    beta, desirable_weight, undesirable_weight = 0.3, 1.5, 0.7
    rows = [{'prompt_ids': PROMPT, 'completion_ids': CHOSEN, 'label': True},
            {'prompt_ids': PROMPT, 'completion_ids': REJECTED, 'label': False}]
    trainer = make_kto_trainer(_training_args(tmp_path),
                               KTOArguments(beta=beta, desirable_weight=desirable_weight,
                                                 undesirable_weight=undesirable_weight),
                               model=model, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    batch = trainer.data_collator(list(trainer.train_dataset))
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()

    (good, bad), (ref_good, ref_bad) = _policy_and_reference_logps(model, [CHOSEN, REJECTED])
    # The KL estimate uses each prompt with the other row's answer (here the same prompt, swapped answers).
    kl = max(0.0, ((bad - ref_bad) + (good - ref_good)) / 2)
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    losses = [desirable_weight * (1 - sigmoid(beta * ((good - ref_good) - kl))),
              undesirable_weight * (1 - sigmoid(beta * (kl - (bad - ref_bad))))]
    assert loss == pytest.approx(sum(losses) / 2, rel=1e-4)


def test_reward_model_loss_by_hand(qwen2_dir, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(qwen2_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    rows = [{'chosen_ids': PROMPT + CHOSEN, 'rejected_ids': PROMPT + REJECTED}]
    trainer = make_rm_trainer(_training_args(tmp_path), RMArguments(center_rewards_coefficient=0.1),
                              model=model, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, trainer.data_collator(rows)).item()
        chosen = model(input_ids=torch.tensor([PROMPT + CHOSEN])).logits.item()
        rejected = model(input_ids=torch.tensor([PROMPT + REJECTED])).logits.item()
    expected = _neg_logsigmoid(chosen - rejected) + 0.1 * (chosen + rejected) ** 2  # trl: coef * mean((r_c + r_r)^2)
    assert loss == pytest.approx(expected, rel=1e-4)
