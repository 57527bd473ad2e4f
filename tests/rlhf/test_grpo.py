"""GRPO: the seed's command on a tiny model, a toy task it learns, and trl's loss pieces against a hand computation."""
import json
import math
import os

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from swift.arguments import parse_args
from swift.llm import rlhf_main
from swift.rlhf.arguments import RLHFArguments
from swift.rlhf.dynamic_sampling import flat_groups, replace_groups
from swift.rlhf.grpo import GRPOArguments, advantage_settings, make_trainer
from swift.template import get_template
from swift.utils import SwiftError, env
from tests.conftest import run_swift
from tests.rlhf.seed import NUMINA, PROMPT_TXT, seed_grpo_argv


def test_the_seed_command_completes(qwen2_dir, tmp_path):
    """Seed 000's GRPO command, without vLLM here: transformers generates, with one warning."""
    proc = run_swift(*seed_grpo_argv(qwen2_dir, str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'completions are generated with transformers' in proc.stderr
    run_dir = next(tmp_path.glob('v0-*'))
    logged = [json.loads(line) for line in open(run_dir / 'logging.jsonl')]
    assert any('rewards/accuracy/mean' in r and 'rewards/format/mean' in r and 'kl' in r for r in logged)
    completions = [json.loads(line) for line in open(run_dir / 'completions.jsonl')]
    assert len(completions) >= 8 and set(completions[0]) == {'step', 'prompt', 'completion', 'rewards', 'advantage'}
    assert completions[0]['prompt'][0] == {'role': 'system', 'content': open(PROMPT_TXT).read().strip()}
    assert set(completions[0]['rewards']) == {'accuracy', 'format'}
    assert [(c / 'adapter_model.safetensors').is_file() for c in run_dir.glob('checkpoint-*')] == [True]
    assert any(name.startswith('train_reward') for name in os.listdir(run_dir / 'images'))


def test_the_seed_multi_gpu_command_parses(qwen2_dir, monkeypatch):
    """Seed 000's 8-process GRPO command (as each torchrun worker parses it): ms-swift 3.x's --vllm_device and
    --num_infer_workers are accepted, --deepspeed zero2 is ms-swift's ZeRO-2 preset, and one generation batch of
    1 row x 2 accumulation steps x 8 processes holds two whole groups of 8."""
    monkeypatch.setattr(env, 'world_size', lambda: 8)  # WORLD_SIZE itself would make transformers join a group
    argv = ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'accuracy', 'format', '--use_vllm', 'true',
            '--vllm_device', 'auto', '--vllm_gpu_memory_utilization', '0.7', '--vllm_max_model_len', '8192',
            '--num_infer_workers', '8', '--train_type', 'lora', '--torch_dtype', 'bfloat16', '--dataset',
            f'{NUMINA}#5000', '--max_completion_length', '2048', '--num_train_epochs', '1',
            '--per_device_train_batch_size', '1', '--per_device_eval_batch_size', '1', '--learning_rate', '1e-6',
            '--gradient_accumulation_steps', '2', '--eval_steps', '200', '--save_steps', '200', '--save_total_limit',
            '2', '--logging_steps', '5', '--max_length', '4096', '--output_dir', 'output', '--warmup_ratio', '0.05',
            '--dataloader_num_workers', '4', '--dataset_num_proc', '4', '--num_generations', '8', '--temperature',
            '0.9', '--system', PROMPT_TXT, '--deepspeed', 'zero2', '--log_completions', 'true', '--sleep_level', '1',
            '--offload_model', 'true', '--offload_optimizer', 'true', '--gc_collect_after_offload', 'true',
            '--log_completions', 'true']
    args = parse_args(RLHFArguments, argv)
    assert args.num_generations == 8 and args.deepspeed['zero_optimization']['stage'] == 2
    monkeypatch.setattr(env, 'world_size', lambda: 1)  # one process: 2 rows cannot hold a group of 8
    with pytest.raises(SwiftError, match=r'\(2 x 1\) must be a multiple of --num_generations \(8\)'):
        parse_args(RLHFArguments, argv)


PLUGIN = '''
from swift.rlhf.rewards import register_reward


@register_reward('low_ids')
def low_ids(prompts, completions, completion_ids, **kwargs):
    """Share of completion tokens with an id below 400: a target a tiny random model can learn quickly."""
    return [sum(token < 400 for token in ids) / max(len(ids), 1) for ids in completion_ids]
'''


def test_the_mean_reward_rises_on_a_toy_task(qwen2_dir, tmp_path):
    plugin = tmp_path / 'my_rewards.py'
    plugin.write_text(PLUGIN)
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--train_type', 'full', '--external_plugins',
                        str(plugin), '--reward_funcs', 'low_ids', '--dataset', NUMINA, '--split_dataset_ratio', '0',
                        '--max_completion_length', '8', '--per_device_train_batch_size', '8', '--num_generations',
                        '4', '--learning_rate', '5e-3', '--max_steps', '30', '--logging_steps', '1', '--beta', '0',
                        '--temperature', '1.0', '--save_strategy', 'no', '--report_to', 'none',
                        '--output_dir', str(tmp_path / 'out')])
    rewards = [r['reward'] for r in result['log_history'] if 'reward' in r]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.1, rewards


# ---- trl's loss pieces, checked by hand ----------------------------------------------------------------------
PROMPT = [1, 2, 3]
COMPLETIONS = [[4, 5, 6], [7, 8, 0]]
MASK = torch.tensor([[1., 1., 1.], [1., 1., 0.]])
ADVANTAGES = torch.tensor([0.5, -1.0])
OLD_SHIFT = torch.tensor([[0.1, -0.3, 0.05], [0.4, 0.0, 0.0]])  # policy minus old log-probs: some ratios clip
REF_SHIFT = torch.tensor([[0.2, -0.1, 0.0], [-0.3, 0.1, 0.0]])  # reference minus policy log-probs


def _zero_reward(prompts, completions, **kwargs):
    return [0.0] * len(completions)


def _completion_logps(model) -> torch.Tensor:
    ids = torch.tensor([PROMPT + c for c in COMPLETIONS])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    positions = torch.arange(len(PROMPT) - 1, ids.shape[1] - 1)
    return log_probs[:, positions].gather(-1, ids[:, len(PROMPT):, None]).squeeze(-1)


TAU_POS, TAU_NEG = 1.0, 2.0  # SAPO's temperatures, tau_neg off its default so that the flag is seen to reach trl


@pytest.mark.parametrize('loss_type, epsilon_high', [('grpo', None), ('bnpo', 0.28), ('dr_grpo', None),
                                                     ('sapo', None), ('cispo', 1.1)])
def test_grpo_loss_by_hand(qwen2_dir, tmp_path, loss_type, epsilon_high):
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(qwen2_dir, dtype=torch.float32),
                           LoraConfig(r=4, target_modules='all-linear', lora_dropout=0.0))
    beta, epsilon, max_len = 0.1, 0.2, 5
    settings = GRPOArguments(beta=beta, epsilon=epsilon, epsilon_high=epsilon_high, loss_type=[loss_type],
                             num_generations=2, max_completion_length=max_len, temperature=1.0, tau_pos=TAU_POS,
                             tau_neg=TAU_NEG)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=2,
                             remove_unused_columns=False)
    trainer = make_trainer(args, settings, model=model, processing_class=tokenizer, reward_funcs=[_zero_reward],
                           template=get_template('qwen', tokenizer), completions_path=None,
                           train_dataset=Dataset.from_list([{'prompt': [{'role': 'user', 'content': 'hi'}]}] * 2))
    model.eval()  # evaluation mode: no dropout and no gradient-accumulation scaling
    logps = _completion_logps(model)
    inputs = {'prompt_ids': torch.tensor([PROMPT, PROMPT]), 'prompt_mask': torch.ones(2, 3, dtype=torch.long),
              'completion_ids': torch.tensor(COMPLETIONS), 'completion_mask': MASK.long(),
              'advantages': ADVANTAGES, 'old_per_token_logps': logps - OLD_SHIFT,
              'ref_per_token_logps': logps + REF_SHIFT, 'num_items_in_batch': MASK.sum()}
    with torch.no_grad():
        loss = trainer.compute_loss(model, inputs).item()

    ratio = torch.exp(OLD_SHIFT)
    per_token = _policy_term(loss_type, ratio, ADVANTAGES[:, None], logps, epsilon, epsilon_high or epsilon)
    # k3 estimate of KL(policy || reference), weighted by the ratio (trl's default bias correction for old samples)
    per_token += beta * (torch.exp(REF_SHIFT) - REF_SHIFT - 1) * ratio
    if loss_type in ('grpo', 'sapo'):  # each sequence's token mean, then the mean over sequences
        expected = ((per_token * MASK).sum(-1) / MASK.sum(-1)).mean()
    elif loss_type in ('bnpo', 'cispo'):  # the mean over every token of the batch
        expected = (per_token * MASK).sum() / MASK.sum()
    else:  # dr_grpo: a constant normaliser, sequences x max completion length
        expected = (per_token * MASK).sum() / (2 * max_len)
    assert loss == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


def _policy_term(loss_type: str, ratio, advantages, logps, epsilon: float, epsilon_high: float):
    """Each token's policy loss, from its ratio to the old policy, its advantage and its log-probability."""
    if loss_type == 'sapo':  # a sigmoid gate in place of the clip, 4/tau * sigmoid(tau (r - 1)), tau by the sign of A
        tau = torch.where(advantages > 0, TAU_POS, TAU_NEG)
        return -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * advantages
    if loss_type == 'cispo':  # the weight min(r, epsilon_high) times the log-probability: a REINFORCE term
        return -ratio.clamp(max=epsilon_high) * advantages * logps
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon_high)
    return -torch.minimum(ratio * advantages, clipped * advantages)


@pytest.mark.parametrize('estimator', ['grpo', 'rloo', 'reinforce_plus_plus'])
def test_advantage_estimators_by_hand(estimator):
    """trl's advantage (r - group mean, scaled as asked) times our factor equals each estimator's definition."""
    rewards = torch.tensor([[1.0, 0.0, 0.5, 0.5], [2.0, 2.0, 0.0, 4.0]])  # two groups of four
    scale_rewards, factor = advantage_settings(estimator, 'group', num_generations=4)
    centred = rewards - rewards.mean(1, keepdim=True)
    std = {'group': rewards.std(1, keepdim=True), 'batch': rewards.std(), 'none': torch.tensor(1.0)}[scale_rewards]
    trl_advantage = centred / (std + 1e-4) if scale_rewards != 'none' else centred
    if estimator == 'rloo':  # r_i minus the mean of the other rewards in its group
        others = (rewards.sum(1, keepdim=True) - rewards) / 3
        expected = rewards - others
    elif estimator == 'reinforce_plus_plus':  # group baseline, normalised over the batch
        expected = centred / (rewards.std() + 1e-4)
    else:
        expected = centred / (rewards.std(1, keepdim=True) + 1e-4)
    assert torch.allclose(trl_advantage * factor, expected, atol=1e-5)


def test_replace_groups_pads_and_moves_whole_groups():
    batch = {'prompt_ids': torch.tensor([[9, 1], [9, 1], [2, 3], [2, 3]]), 'prompt_mask': torch.ones(4, 2),
             'completion_ids': torch.tensor([[5], [6], [7], [8]]), 'completion_mask': torch.ones(4, 1),
             'advantages': torch.tensor([0.0, 0.0, 1.0, -1.0]), 'num_items_in_batch': torch.tensor(4.0)}
    fresh = {'prompt_ids': torch.tensor([[4, 4, 4], [4, 4, 4]]), 'prompt_mask': torch.ones(2, 3),
             'completion_ids': torch.tensor([[1, 2], [3, 0]]), 'completion_mask': torch.tensor([[1., 1.], [1., 0.]]),
             'advantages': torch.tensor([0.7, -0.7])}
    assert flat_groups(batch['advantages'], 2).tolist() == [True, False]
    merged = replace_groups(batch, fresh, targets=torch.tensor([0]), sources=torch.tensor([0]), group_size=2,
                            pad_token_id=0)
    # prompts are left-padded to the wider batch, completions right-padded
    assert merged['prompt_ids'].tolist() == [[4, 4, 4], [4, 4, 4], [0, 2, 3], [0, 2, 3]]
    assert merged['prompt_mask'].tolist() == [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert merged['completion_ids'].tolist() == [[1, 2], [3, 0], [7, 0], [8, 0]]
    assert merged['completion_mask'].tolist() == [[1, 1], [1, 0], [1, 0], [1, 0]]
    assert merged['advantages'].tolist() == pytest.approx([0.7, -0.7, 1.0, -1.0])
    assert not flat_groups(merged['advantages'], 2).any()


FLAT_PLUGIN = '''
from swift.rlhf.rewards import register_reward


@register_reward('flat_for_sums_with_1')
def flat_for_sums_with_1(prompts, completions, completion_ids, **kwargs):
    """The same reward for every completion of 'What is 1 + ...' (a group with nothing to learn); else varied."""
    return [1.0 if 'What is 1 +' in prompt[-1]['content'] else float(ids[0] % 7)
            for prompt, ids in zip(prompts, completion_ids)]
'''


def test_dynamic_sampling_replaces_groups_with_equal_rewards(qwen2_dir, tmp_path):
    plugin = tmp_path / 'flat.py'
    plugin.write_text(FLAT_PLUGIN)
    rows = tmp_path / 'sums.jsonl'
    rows.write_text(''.join(json.dumps({'query': f'What is {a} + {b}?'}) + '\n' for a in (1, 2) for b in range(4)))
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--external_plugins', str(plugin),
                        '--reward_funcs', 'flat_for_sums_with_1', '--dataset', str(rows), '--split_dataset_ratio', '0',
                        '--max_completion_length', '4', '--per_device_train_batch_size', '8', '--num_generations', '2',
                        '--max_steps', '3', '--logging_steps', '1', '--dynamic_sample', 'true', '--save_strategy', 'no',
                        '--report_to', 'none', '--output_dir', str(tmp_path / 'out')])
    key = 'dynamic_sample/replaced_groups'
    replaced = [record[key] for record in result['log_history'] if key in record]
    assert len(replaced) == 3 and sum(replaced) > 0


def test_a_reward_model_scores_completions_beside_reward_functions(qwen2_dir, reward_checkpoint, tmp_path):
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_model', reward_checkpoint,
                        '--reward_funcs', 'format', '--reward_weights', '0.5', '1.0', '--dataset', NUMINA,
                        '--split_dataset_ratio', '0', '--max_completion_length', '4', '--per_device_train_batch_size',
                        '4', '--num_generations', '4', '--max_steps', '2', '--logging_steps', '1',
                        '--save_strategy', 'no', '--report_to', 'none', '--output_dir', str(tmp_path)])
    logged = [r for r in result['log_history'] if 'reward' in r]
    model_means = [r[k] for r in logged for k in r if k.startswith('rewards/') and k.endswith('/mean')
                   and 'format' not in k]
    assert len(logged) == 2 and len(model_means) == 2 and all(mean != 0 for mean in model_means)
    # the total is the weighted sum of the reward columns: format (weight 0.5) is 0 on a random model
    assert logged[0]['reward'] == pytest.approx(model_means[0], abs=1e-4)


def test_an_eval_batch_that_splits_groups_is_one_error(qwen2_dir):
    argv = ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'format', '--dataset', NUMINA,
            '--per_device_train_batch_size', '4', '--num_generations', '4']
    with pytest.raises(SwiftError, match=r'--per_device_eval_batch_size x processes \(1 x 1\) must be a multiple'):
        parse_args(RLHFArguments, argv)
    assert parse_args(RLHFArguments, [*argv, '--split_dataset_ratio', '0']).num_generations == 4


# ---- SAPO, CISPO and CHORD in short runs ----------------------------------------------------------------------
def _short_run(qwen2_dir, tmp_path, *extra: str, steps: int = 2) -> list[dict]:
    """A few GRPO steps on the toy reward (it varies within groups, so the advantages are not all 0): the training
    log records."""
    plugin = tmp_path / 'my_rewards.py'
    plugin.write_text(PLUGIN)
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--external_plugins', str(plugin),
                        '--reward_funcs', 'low_ids', '--dataset', NUMINA, '--split_dataset_ratio', '0',
                        '--max_completion_length', '4', '--per_device_train_batch_size', '4', '--num_generations', '4',
                        '--max_steps', str(steps), '--logging_steps', '1', '--save_strategy', 'no',
                        '--report_to', 'none', '--output_dir', str(tmp_path / 'out'), *extra])
    records = [r for r in result['log_history'] if 'loss' in r]
    assert len(records) == steps and all(math.isfinite(r['loss']) for r in records), records
    return records


def test_sapo_trains_with_its_soft_gate(qwen2_dir, tmp_path):
    records = _short_run(qwen2_dir, tmp_path, '--loss_type', 'sapo', '--tau_pos', '1.0', '--tau_neg', '1.05')
    assert not any('clip_ratio/region_mean' in r for r in records)  # no hard clip: trl's SAPO branch ran


def test_cispo_trains_with_its_clipped_weights(qwen2_dir, tmp_path):
    records = _short_run(qwen2_dir, tmp_path, '--loss_type', 'cispo', '--epsilon_high', '5.0')
    assert all(r['cispo_clip_ratio'] == 0 for r in records)  # one update per batch: every ratio is 1 < 5


def test_chord_mixes_the_expert_sft_loss_in_on_its_schedule(qwen2_dir, tmp_path):
    """Two accumulation steps: the logged loss, summed over them, is the mix of the parts' means only if the SFT
    loss is scaled for accumulation as trl scales its own."""
    records = _short_run(qwen2_dir, tmp_path, '--chord_sft_dataset', NUMINA, '--chord_sft_per_device_train_batch_size',
                         '2', '--chord_mu_warmup_steps', '1', '--chord_mu_decay_steps', '2', '--chord_mu_peak', '0.8',
                         '--chord_mu_valley', '0.2', '--chord_enable_phi_function', 'true',
                         '--per_device_train_batch_size', '2', '--gradient_accumulation_steps', '2', steps=3)
    # mu at steps 0, 1, 2: warm-up from 0, the peak, half-way down the cosine to the valley
    assert [r['chord/mu'] for r in records] == pytest.approx([0.0, 0.8, 0.5])
    assert 'chord/sft_loss' not in records[0]  # mu = 0: no expert batch
    for record in records[1:]:
        mu, grpo, sft = record['chord/mu'], record['chord/grpo_loss'], record['chord/sft_loss']
        # phi: p(1 - p)(-log p) never exceeds 0.26, while a random model's plain NLL is about ln(vocabulary size)
        assert math.isfinite(sft) and 0 < sft < 0.26
        assert record['loss'] == pytest.approx((1 - mu) * grpo + mu * sft, rel=1e-4, abs=1e-8)


@pytest.mark.parametrize('extra, message', [
    (['--loss_type', 'gspo'], r'--loss_type gspo: GRPO takes one of grpo, bnpo, dr_grpo, dapo, sapo, cispo'),
    (['--loss_type', 'sapo', '--tau_neg', '0'], r'--tau_neg must be positive'),
    (['--chord_mu_peak', '0.5'], r"--chord_mu_peak: CHORD's flags need --chord_sft_dataset"),
    (['--chord_sft_dataset', NUMINA, '--chord_mu_peak', '0.5'], r'needs --chord_mu_valley in \[0, 1\], got None'),
    (['--chord_sft_dataset', NUMINA, '--chord_mu_peak', '1.5', '--chord_mu_valley', '0.1'], r'--chord_mu_peak in'),
    (['--chord_sft_dataset', NUMINA, '--chord_mu_peak', '0.5', '--chord_mu_valley', '0.1',
      '--chord_sft_per_device_train_batch_size', '0'], r'--chord_sft_per_device_train_batch_size must be at least 1'),
])
def test_bad_loss_variant_flags_are_one_error(qwen2_dir, extra, message):
    argv = ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'format', '--dataset', NUMINA,
            '--split_dataset_ratio', '0', '--per_device_train_batch_size', '4', '--num_generations', '4']
    with pytest.raises(SwiftError, match=message):
        parse_args(RLHFArguments, [*argv, *extra])


def test_chord_belongs_to_grpo_and_cispo_warns_without_epsilon_high(qwen2_dir, caplog):
    with pytest.raises(SwiftError, match='--chord_sft_dataset is read by --rlhf_type grpo only, not by dpo'):
        parse_args(RLHFArguments, ['--rlhf_type', 'dpo', '--model', qwen2_dir, '--dataset', NUMINA,
                                   '--chord_sft_dataset', NUMINA, '--chord_mu_peak', '0.5', '--chord_mu_valley', '0.5'])
    args = parse_args(RLHFArguments, ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'format',
                                      '--dataset', NUMINA, '--split_dataset_ratio', '0', '--num_generations', '1',
                                      '--loss_type', 'cispo'])
    assert args.tau_pos == 1.0 and args.tau_neg == 1.05 and args.chord_mu_peak is None  # ms-swift's defaults
    assert '--epsilon_high, unset so --epsilon 0.2' in caplog.text
