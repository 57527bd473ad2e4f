"""PPO: its pure pieces against hand computations, and a run on the tiny model with a reward model trained first."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from swift.rlhf.arguments import RLHFArguments
from swift.llm import infer_main, rlhf_main
from swift.rlhf.ppo import (completion_mask, compute_gae, kl_shaped_rewards, ppo_policy_loss, ppo_value_loss)
from swift.utils import SwiftError


PAIRS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'train', 'rlhf', 'data', 'pairs.jsonl')


def test_gae_by_hand():
    rewards = torch.tensor([[0.1, -0.2, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.4, 0.3, 0.2]])
    advantages, returns = compute_gae(rewards, values, torch.ones(1, 4), gamma=0.9, lam=0.8)
    # delta_t = r_t + 0.9 * V_{t+1} - V_t (V_4 = 0); A_t = delta_t + 0.9 * 0.8 * A_{t+1} (A_4 = 0)
    # t=3: delta = 1.0 + 0 - 0.2 = 0.8;            A = 0.8
    # t=2: delta = 0.0 + 0.18 - 0.3 = -0.12;       A = -0.12 + 0.72 * 0.8 = 0.456
    # t=1: delta = -0.2 + 0.27 - 0.4 = -0.33;      A = -0.33 + 0.72 * 0.456 = -0.00168
    # t=0: delta = 0.1 + 0.36 - 0.5 = -0.04;       A = -0.04 + 0.72 * -0.00168 = -0.0412096
    expected = torch.tensor([[-0.0412096, -0.00168, 0.456, 0.8]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    assert torch.allclose(returns, expected + values, atol=1e-6)


def test_gae_ignores_what_follows_the_last_token():
    rewards, values = torch.tensor([[0.3, 1.0, 5.0, 7.0]]), torch.tensor([[0.2, 0.6, 9.0, 9.0]])
    advantages, returns = compute_gae(rewards, values, torch.tensor([[1., 1., 0., 0.]]), gamma=1.0, lam=0.95)
    # t=1: A = 1.0 - 0.6 = 0.4; t=0: delta = 0.3 + 0.6 - 0.2 = 0.7, A = 0.7 + 0.95 * 0.4 = 1.08
    assert torch.allclose(advantages, torch.tensor([[1.08, 0.4, 0., 0.]]), atol=1e-6)
    assert torch.allclose(returns, torch.tensor([[1.28, 1.0, 0., 0.]]), atol=1e-6)


def test_clipped_policy_loss_by_hand():
    ratios = torch.tensor([[1.1, 1.5, 0.7, 0.9, 0.7, 3.0]])
    advantages = torch.tensor([[1., 1., -1., -1., 1., 1.]])
    mask = torch.tensor([[1., 1., 1., 1., 1., 0.]])  # the last token is padding
    loss, clipfrac = ppo_policy_loss(ratios.log(), torch.zeros(1, 6), advantages, mask, cliprange=0.2)
    # per token max(-A * ratio, -A * clip(ratio, 0.8, 1.2)):
    #   1.1, A=1: inside the range          -> -1.1
    #   1.5, A=1: clipped to 1.2            -> -1.2 (clipped)
    #   0.7, A=-1: clipped to 0.8           ->  0.8 (clipped)
    #   0.9, A=-1: inside                   ->  0.9
    #   0.7, A=1: below the range, but the unclipped term is the pessimistic one -> -0.7
    expected = (-1.1 - 1.2 + 0.8 + 0.9 - 0.7) / 5
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 5)


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[0.1, 0.5, -0.3, 0.5]])
    returns = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    loss, clipfrac = ppo_value_loss(values, torch.zeros(1, 4), returns, torch.ones(1, 4), cliprange_value=0.2)
    # old values 0, so V_clipped = clip(V, -0.2, 0.2); per token max((V - R)^2, (V_clipped - R)^2):
    #   0.1 inside the range: 0.81;  0.5 -> 0.2, R=0: max(0.25, 0.04) = 0.25;
    #   -0.3 -> -0.2, R=0: max(0.09, 0.04) = 0.09;  0.5 -> 0.2, R=1: max(0.25, 0.64) = 0.64 (clipped)
    assert loss.item() == pytest.approx(0.5 * (0.81 + 0.25 + 0.09 + 0.64) / 4, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 4)


def test_kl_shaped_rewards_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -3.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -0.5], [-0.5, -1.0, -9.0]])
    mask = torch.tensor([[1., 1., 1.], [1., 1., 0.]])
    rewards = kl_shaped_rewards(torch.tensor([2.0, -1.0]), logprobs, ref_logprobs, mask, kl_coef=0.1)
    # -0.1 * (logp - ref) at each token; the score lands on each row's last real token
    expected = torch.tensor([[-0.05, 0.0, 2.0], [0.05, -1.0, 0.0]])
    assert torch.allclose(rewards, expected, atol=1e-6)


def test_completion_mask_ends_at_the_first_stop_token():
    ids = torch.tensor([[5, 7, 2, 9, 2], [1, 2, 3, 4, 5], [6, 6, 6, 6, 6]])
    expected = torch.tensor([[1., 1., 1., 0., 0.], [1., 1., 0., 0., 0.], [1., 1., 1., 1., 1.]])
    assert torch.equal(completion_mask(ids, [2]), expected)


def test_ppo_needs_a_reward_model_and_mini_batches_that_divide_the_rollout(qwen2_dir):
    with pytest.raises(SwiftError, match='--reward_model'):
        RLHFArguments(rlhf_type='ppo', model=qwen2_dir, dataset=[PAIRS])
    with pytest.raises(SwiftError, match='--num_mini_batches 4 must divide the rollout .* = 2 rows'):
        RLHFArguments(rlhf_type='ppo', model=qwen2_dir, dataset=[PAIRS], reward_model=['rm'],
                      per_device_train_batch_size=1, gradient_accumulation_steps=2, num_mini_batches=4)
    RLHFArguments(rlhf_type='ppo', model=qwen2_dir, dataset=[PAIRS], reward_model=['rm'],
                  per_device_train_batch_size=2, gradient_accumulation_steps=2, num_mini_batches=4)


def _common(model_dir: str) -> list[str]:
    return ['--model', model_dir, '--dataset', PAIRS, '--split_dataset_ratio', '0', '--report_to', 'none',
            '--dataloader_num_workers', '0', '--per_device_train_batch_size', '4']


def _ppo_flags(model_dir: str, reward_checkpoint: str, output_dir) -> list[str]:
    return ['--rlhf_type', 'ppo', *_common(model_dir), '--reward_model', reward_checkpoint, '--num_ppo_epochs', '2',
            '--response_length', '6', '--logging_steps', '1', '--save_steps', '2', '--learning_rate', '1e-4',
            '--output_dir', str(output_dir)]


def test_ppo_trains_with_a_reward_model_and_its_checkpoint_infers(qwen2_dir, reward_checkpoint, tmp_path):
    ppo = _ppo_flags(qwen2_dir, reward_checkpoint, tmp_path / 'ppo')
    result = rlhf_main([*ppo, '--max_steps', '2'])
    logged = [json.loads(line) for line in open(os.path.join(result['run_dir'], 'logging.jsonl'))]
    metrics = {'objective/scores', 'objective/kl', 'policy/clipfrac', 'loss/policy', 'loss/value', 'val/mean'}
    steps = [record for record in logged if 'objective/scores' in record]
    assert len(steps) == 2 and all(metrics <= set(r) and all(math.isfinite(r[m]) for m in metrics) for r in steps)
    # a fresh LoRA adapter leaves the policy equal to its reference: no KL at the first rollout
    assert steps[0]['objective/kl'] == pytest.approx(0, abs=1e-4)
    assert steps[-1]['loss/policy'] < 0  # the updates raise the surrogate objective on their own rollout
    assert all(r['grad_norm'] > 0 for r in steps)  # ours, not the Trainer's (its own step finds no gradients)
    assert {'train_objective_scores.png', 'train_loss_value.png'} <= set(os.listdir(os.path.join(result['run_dir'],
                                                                                               'images')))
    checkpoint = result['last_model_checkpoint']
    assert os.path.isfile(os.path.join(checkpoint, 'adapter_model.safetensors'))
    assert os.path.isfile(os.path.join(checkpoint, 'value_model', 'model.safetensors'))

    resumed = rlhf_main([*ppo, '--max_steps', '3', '--resume_from_checkpoint', checkpoint])  # value model too
    assert resumed['last_model_checkpoint'].endswith('checkpoint-3')
    assert [r['step'] for r in resumed['log_history'] if 'objective/scores' in r] == [1, 2, 3]

    prompts = tmp_path / 'prompts.jsonl'
    prompts.write_text(''.join(json.dumps({'messages': [{'role': 'user', 'content': q}]}) + '\n'
                               for q in ('What do you think about tea?', 'What do you think about snow?')))
    answers = infer_main(['--adapters', checkpoint, '--val_dataset', str(prompts), '--max_new_tokens', '4'])
    assert len(answers) == 2 and all(isinstance(row['response'], str) for row in answers)


def test_full_training_uses_a_frozen_copy_as_reference(qwen2_dir, reward_checkpoint, tmp_path):
    result = rlhf_main([*_ppo_flags(qwen2_dir, reward_checkpoint, tmp_path), '--train_type', 'full',
                        '--max_steps', '2'])
    kls = [r['objective/kl'] for r in result['log_history'] if 'objective/kl' in r]
    assert kls[0] == pytest.approx(0, abs=1e-4) and kls[1] != pytest.approx(0, abs=1e-6)  # the copy stays behind
    assert os.path.isfile(os.path.join(result['last_model_checkpoint'], 'model.safetensors'))


def _low_id_reward_model(model_dir: str, out_dir) -> str:
    """A reward-model checkpoint built by hand: its blocks write nothing to the residual stream, so it scores the
    last token's embedding along the direction that separates ids below 400 from the rest (a dense target, like
    GRPO's toy reward, that a tiny random policy can learn)."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings = model.model.embed_tokens.weight
        unit = embeddings / embeddings.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        low = torch.arange(len(unit)) < 400
        direction = unit[low].mean(0) - unit[~low].mean(0)
        model.score.weight.copy_(direction[None] / direction.norm())
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    (out_dir / 'args.json').write_text(json.dumps({'model': model_dir, 'task_type': 'seq_cls', 'num_labels': 1}))
    return str(out_dir)


def test_the_mean_score_rises_on_a_toy_task(qwen2_dir, tmp_path):
    reward_model = _low_id_reward_model(qwen2_dir, tmp_path / 'rm')
    # kl_coef 0: the score alone is the objective here
    result = rlhf_main(['--rlhf_type', 'ppo', *_common(qwen2_dir), '--per_device_train_batch_size', '8',
                        '--reward_model', reward_model, '--train_type', 'full', '--learning_rate', '5e-3',
                        '--lr_scheduler_type', 'constant', '--kl_coef', '0', '--temperature', '1.0',
                        '--response_length', '4', '--max_steps', '30', '--logging_steps', '1', '--save_strategy', 'no',
                        '--output_dir', str(tmp_path / 'ppo')])
    scores = [r['objective/scores'] for r in result['log_history'] if 'objective/scores' in r]
    first, last = sum(scores[:5]) / 5, sum(scores[-5:]) / 5
    assert last > first + 0.4, scores


def test_mini_batches_and_the_missing_eos_penalty(qwen2_dir, reward_checkpoint, tmp_path):
    flags = [*_ppo_flags(qwen2_dir, reward_checkpoint, tmp_path / 'plain'), '--response_length', '2',
             '--max_steps', '1', '--save_steps', '1']
    plain = rlhf_main(flags)
    penalised = rlhf_main([*flags, '--missing_eos_penalty', '4.0', '--num_mini_batches', '2',
                           '--output_dir', str(tmp_path / 'penalised')])
    # The same seed samples the same first rollout; two-token completions of a random model rarely stop, and each
    # that does not loses 4 points.
    first_score = [next(r['objective/scores'] for r in result['log_history'] if 'objective/scores' in r)
                   for result in (plain, penalised)]
    unfinished_share = (first_score[0] - first_score[1]) / 4.0
    assert unfinished_share > 0 and unfinished_share * 4 == pytest.approx(round(unfinished_share * 4), abs=1e-4)
    # two passes over the rollout (--num_ppo_epochs 2) of two mini-batches each: four optimizer steps per step
    for result, steps in ((plain, 2), (penalised, 4)):
        optimizer = torch.load(os.path.join(result['last_model_checkpoint'], 'optimizer.pt'), weights_only=True)
        assert {int(state['step']) for state in optimizer['state'].values()} == {steps}


def test_two_processes_keep_one_value_model(qwen2_dir, reward_checkpoint, tmp_path):
    """Under torchrun (gloo here) each process samples its own rollout, so their value-model gradients differ; the
    value head behind accelerate's DDP wrapper averages them, and the processes' value models stay equal."""
    worker = os.path.join(os.path.dirname(__file__), 'ppo_ranks_worker.py')
    flags = [*_ppo_flags(qwen2_dir, reward_checkpoint, tmp_path / 'out'), '--max_steps', '2']
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                             '--master_port=29613', worker, str(tmp_path), *flags], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [(tmp_path / f'rank{rank}.txt').read_text().split() for rank in (0, 1)]
    assert len(digests[0]) == 2 and digests[0] == digests[1]
    [run_dir] = glob.glob(str(tmp_path / 'out' / 'v*'))
    assert os.path.isfile(os.path.join(run_dir, 'checkpoint-2', 'value_model', 'model.safetensors'))


def test_gradient_accumulation_makes_larger_rollouts(qwen2_dir, reward_checkpoint, tmp_path):
    """As in ms-swift: a rollout is --per_device_train_batch_size x --gradient_accumulation_steps prompts, and each
    mini-batch accumulates micro-batches of the per-device size; 2 x 2 samples the same rollout as 4 x 1."""
    flags = [*_ppo_flags(qwen2_dir, reward_checkpoint, tmp_path / 'one'), '--response_length', '2',
             '--max_steps', '1', '--save_steps', '1', '--num_mini_batches', '2']
    whole = rlhf_main(flags)
    accumulated = rlhf_main([*flags, '--per_device_train_batch_size', '2', '--gradient_accumulation_steps', '2',
                             '--output_dir', str(tmp_path / 'accumulated')])
    first = [next(r for r in result['log_history'] if 'objective/scores' in r) for result in (whole, accumulated)]
    assert first[0]['objective/scores'] == pytest.approx(first[1]['objective/scores'], abs=1e-5)
    assert first[0]['objective/kl'] == pytest.approx(first[1]['objective/kl'], abs=1e-5)
    for result in (whole, accumulated):  # 2 epochs x 2 mini-batches, whatever the micro-batches
        optimizer = torch.load(os.path.join(result['last_model_checkpoint'], 'optimizer.pt'), weights_only=True)
        assert {int(state['step']) for state in optimizer['state'].values()} == {4}
        assert result['log_history'][-1]['step'] == 1
