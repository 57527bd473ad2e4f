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


# ---- GRPO: ms-swift's flags that are trl GRPOConfig fields -------------------------------------------------------
def _grpo_trainer(qwen2_dir, tmp_path, model=None, **settings):
    from peft import LoraConfig, get_peft_model

    from swift.rlhf.grpo import GRPOArguments, make_trainer
    from swift.template import get_template
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    if model is None:
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(qwen2_dir),
                               LoraConfig(r=4, target_modules='all-linear'))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, remove_unused_columns=False)
    return make_trainer(args, GRPOArguments(**{'num_generations': 2, 'max_completion_length': 4, **settings}),
                        model=model, processing_class=tokenizer, template=get_template('qwen', tokenizer),
                        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                        train_dataset=Dataset.from_list([{'prompt': [{'role': 'user', 'content': 'hi'}]}] * 4))


def test_grpo_flags_reach_trl_under_its_names(qwen2_dir, tmp_path):
    trainer = _grpo_trainer(qwen2_dir, tmp_path, overlong_filter=True, steps_per_generation=4, min_p=0.1,
                            num_generations_eval=1, delta=1.5, top_entropy_quantile=0.2,
                            rollout_importance_sampling_mode='token_truncate',
                            rollout_importance_sampling_threshold=3.5, off_policy_sequence_mask_delta=0.7,
                            vllm_server_base_url=['http://10.0.0.1:8001'], vllm_server_timeout=30.0,
                            vllm_server_group_port=[51300], ds3_gather_for_generation=False)
    assert trainer.mask_truncated_completions and trainer.top_entropy_quantile == 0.2
    assert trainer.args.generation_batch_size == 2 * 4  # per device x steps per generation (one process)
    assert trainer.args.steps_per_generation == 4 and trainer.num_generations_eval == 1
    assert trainer.min_p == 0.1 and trainer.args.delta == 1.5 and trainer.off_policy_mask_threshold == 0.7
    assert trainer.vllm_importance_sampling_correction and trainer.vllm_importance_sampling_mode == 'token_truncate'
    assert trainer.vllm_importance_sampling_clip_max == 3.5
    assert (trainer.args.vllm_server_base_url, trainer.args.vllm_server_timeout, trainer.args.vllm_group_port,
            trainer.args.ds3_gather_for_generation) == ('http://10.0.0.1:8001', 30.0, 51300, False)
    plain = _grpo_trainer(qwen2_dir, tmp_path / 'plain')
    # ms-swift corrects vLLM's rollouts only when a mode is given; trl would by default
    assert not plain.vllm_importance_sampling_correction and not plain.mask_truncated_completions
    assert plain.args.generation_batch_size == 2 * 2 and plain.min_p is None


def test_grpo_generation_batch_and_sync_ref_model_are_one_line_errors(qwen2_dir, tmp_path):
    from swift.utils import SwiftError
    with pytest.raises(SwiftError, match=r'--generation_batch_size 3 must be a multiple of'):
        _grpo_trainer(qwen2_dir, tmp_path, generation_batch_size=3)
    assert _grpo_trainer(qwen2_dir, tmp_path, generation_batch_size=6).args.steps_per_generation == 3
    with pytest.raises(SwiftError, match='--sync_ref_model true needs --train_type full'):
        _grpo_trainer(qwen2_dir, tmp_path, sync_ref_model=True, beta=0.04)
    full = _grpo_trainer(qwen2_dir, tmp_path, model=AutoModelForCausalLM.from_pretrained(qwen2_dir),
                         sync_ref_model=True, beta=0.04, ref_model_sync_steps=3, ref_model_mixup_alpha=0.5)
    assert any(type(c).__name__ == 'SyncRefModelCallback' for c in full.callback_handler.callbacks)
    assert (full.args.ref_model_sync_steps, full.args.ref_model_mixup_alpha) == (3, 0.5)


def test_grpo_steps_per_generation_and_both_batch_flags_parse(qwen2_dir):
    from swift.arguments import parse_args
    from swift.rlhf.arguments import RLHFArguments
    from swift.utils import SwiftError
    argv = ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'format', '--dataset', 'd.jsonl',
            '--split_dataset_ratio', '0', '--per_device_train_batch_size', '2', '--num_generations', '4']
    with pytest.raises(SwiftError, match=r'--gradient_accumulation_steps x processes \(2 x 1\) must be a multiple'):
        parse_args(RLHFArguments, argv)  # 2 rows per generation cannot hold a group of 4
    assert parse_args(RLHFArguments, [*argv, '--steps_per_generation', '2']).steps_per_generation == 2
    with pytest.raises(SwiftError, match='set one of them'):
        parse_args(RLHFArguments, [*argv, '--steps_per_generation', '2', '--generation_batch_size', '4'])
    with pytest.raises(SwiftError, match="--reward_model_plugin genrm: only 'default'"):
        parse_args(RLHFArguments, [*argv, '--steps_per_generation', '2', '--reward_model_plugin', 'genrm'])


OVERLONG_PLUGIN = '''
from swift.rlhf.rewards import register_reward


@register_reward('first_id_parity')
def first_id_parity(prompts, completions, completion_ids, **kwargs):
    return [float(ids[0] % 2) for ids in completion_ids]
'''


def _parity_grpo_log(qwen2_dir, tmp_path, max_completion_length: int, *extra: str) -> list[dict]:
    """Two GRPO steps on the first-id-parity reward: the log history."""
    from tests.rlhf.seed import NUMINA
    plugin = tmp_path / 'parity.py'
    plugin.write_text(OVERLONG_PLUGIN)
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--external_plugins', str(plugin),
                        '--reward_funcs', 'first_id_parity', '--dataset', NUMINA,
                        '--max_completion_length', str(max_completion_length), '--per_device_train_batch_size', '4',
                        '--num_generations', '4', '--max_steps', '2', '--logging_steps', '1', '--save_strategy', 'no',
                        '--output_dir', str(tmp_path / f'out{len(extra)}'), *COMMON, *extra])
    return result['log_history']


def test_overlong_filter_trains_on_no_truncated_completion(qwen2_dir, tmp_path):
    """Two-token completions of a random model are cut off: with --overlong_filter none takes part in the loss, so
    no gradient flows; without it they do."""

    def grad_norms(*extra):
        return [r['grad_norm'] for r in _parity_grpo_log(qwen2_dir, tmp_path, 2, *extra) if 'grad_norm' in r]
    assert all(norm > 0 for norm in grad_norms())
    assert grad_norms('--overlong_filter', 'true') == [0.0, 0.0]


# ---- DPO: LD-DPO's ld_alpha and DiscoPOP's tau ---------------------------------------------------------------
@pytest.mark.parametrize('settings', [{'ld_alpha': 0.3}, {'loss_type': ['discopop'], 'discopop_tau': 0.5}])
def test_dpo_ld_alpha_and_discopop_tau_by_hand(qwen2_dir, tmp_path, settings):
    import math

    import torch

    from swift.rlhf.dpo import DPOArguments
    from swift.rlhf.dpo import make_trainer as make_dpo_trainer
    from tests.rlhf.test_losses import CHOSEN, PROMPT, REJECTED, _answer_logp, _policy, _training_args
    model = _policy(qwen2_dir)
    beta = 0.2
    rows = [{'prompt_ids': PROMPT, 'chosen_ids': CHOSEN, 'rejected_ids': REJECTED}]
    trainer = make_dpo_trainer(_training_args(tmp_path), DPOArguments(beta=beta, **settings), model=model,
                               train_dataset=Dataset.from_list(rows),
                               processing_class=AutoTokenizer.from_pretrained(qwen2_dir))
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, trainer.data_collator(rows)).item()

    alpha = settings.get('ld_alpha', 1.0)
    shared = min(len(CHOSEN), len(REJECTED))  # LD-DPO: tokens past the shorter answer weigh alpha

    def logp(answer):
        head = _answer_logp(model, PROMPT, answer[:shared])
        return head + alpha * (_answer_logp(model, PROMPT, answer) - head)
    policy = [logp(CHOSEN), logp(REJECTED)]
    with model.disable_adapter():
        reference = [logp(CHOSEN), logp(REJECTED)]
    logits = beta * ((policy[0] - reference[0]) - (policy[1] - reference[1]))
    logistic = math.log(1 + math.exp(-logits))
    if 'discopop_tau' in settings:  # a blend of the logistic and exponential losses, by sigmoid(logits / tau)
        weight = 1 / (1 + math.exp(-logits / settings['discopop_tau']))
        expected = logistic * (1 - weight) + math.exp(-logits) * weight
    else:
        expected = logistic
    assert loss == pytest.approx(expected, rel=1e-4)


# ---- GKD: sft_alpha and gkd_logits_topk ------------------------------------------------------------------------
def _gkd_loss(qwen2_dir, teacher, tmp_path, on_policy=False, **settings):
    import torch

    from swift.rlhf.gkd import GKDArguments
    from swift.rlhf.gkd import make_trainer as make_gkd_trainer
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    torch.manual_seed(0)
    student = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    rows = [{'prompt_ids': [1, 2, 3], 'completion_ids': [4, 5, 6]}, {'prompt_ids': [7, 8], 'completion_ids': [9, 10]}]
    training = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    trainer = make_gkd_trainer(training, GKDArguments(beta=0.0, temperature=1.0, **settings), teacher_model=teacher,
                               stop_token_ids=[tokenizer.eos_token_id], model=student, processing_class=tokenizer,
                               train_dataset=Dataset.from_list(rows))
    batch = trainer.data_collator(rows)
    student.eval()
    trainer._on_policy = on_policy
    with torch.no_grad():
        loss = trainer.compute_loss(student, batch).item()
        forward = {'input_ids': batch['input_ids'], 'attention_mask': batch['attention_mask'],
                   'position_ids': (batch['attention_mask'].cumsum(1) - 1).clamp(min=0)}
        cut = slice(batch['prompt_ids'].shape[1] - 1, -1)
        s_logits, t_logits = student(**forward).logits[:, cut], teacher(**forward).logits[:, cut]
    return loss, s_logits, t_logits, batch


def test_gkd_sft_alpha_and_logits_topk_by_hand(qwen2_dir, tmp_path):
    import torch
    teacher = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    with torch.no_grad():
        for param in teacher.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    plain, s_logits, t_logits, batch = _gkd_loss(qwen2_dir, teacher, tmp_path)
    mask = batch['completion_mask'].float()

    def forward_kl(s, t):  # beta 0: KL(teacher || student), mean over completion tokens
        t_log, s_log = t.log_softmax(-1), s.log_softmax(-1)
        return ((t_log.exp() * (t_log - s_log)).sum(-1) * mask).sum() / mask.sum()
    assert plain == pytest.approx(forward_kl(s_logits, t_logits).item(), rel=1e-4)

    topk, *_ = _gkd_loss(qwen2_dir, teacher, tmp_path, gkd_logits_topk=5)
    top_t, index = t_logits.topk(5, dim=-1)
    assert topk == pytest.approx(forward_kl(s_logits.gather(-1, index), top_t).item(), rel=1e-4)
    assert topk != pytest.approx(plain, rel=1e-3)

    nll = -s_logits.log_softmax(-1).gather(-1, batch['completion_ids'][..., None]).squeeze(-1)
    nll = ((nll * mask).sum() / mask.sum()).item()
    with_sft, *_ = _gkd_loss(qwen2_dir, teacher, tmp_path, sft_alpha=0.5)
    assert with_sft == pytest.approx(plain + 0.5 * nll, rel=1e-4)
    on_policy, *_ = _gkd_loss(qwen2_dir, teacher, tmp_path, on_policy=True, sft_alpha=0.5)
    assert on_policy == pytest.approx(plain, rel=1e-5)  # the student's own samples get no SFT term (ms-swift)


# ---- the reference and the teacher: adapters, model_type, revision ----------------------------------------------
def test_dpo_ref_adapters_make_the_reference_base_plus_that_adapter(qwen2_dir, tmp_path):
    import math

    import torch
    from peft import LoraConfig, get_peft_model

    from swift.rlhf.dpo import DPOArguments
    from swift.rlhf.dpo import make_trainer as make_dpo_trainer
    from tests.rlhf.test_losses import CHOSEN, PROMPT, REJECTED, _answer_logp, _policy, _training_args
    sft = _policy(qwen2_dir, seed=1)  # an 'SFT' adapter, moved off zero
    sft.save_pretrained(str(tmp_path / 'sft'))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(qwen2_dir, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules='all-linear', lora_dropout=0.0))
    beta = 0.2
    rows = [{'prompt_ids': PROMPT, 'chosen_ids': CHOSEN, 'rejected_ids': REJECTED}]
    trainer = make_dpo_trainer(_training_args(tmp_path), DPOArguments(beta=beta, ref_adapters=[str(tmp_path / 'sft')]),
                               model=model, train_dataset=Dataset.from_list(rows),
                               processing_class=AutoTokenizer.from_pretrained(qwen2_dir))
    assert model.active_adapter == 'default' and not any(p.requires_grad for n, p in model.named_parameters()
                                                            if '.ref.' in n)
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, trainer.data_collator(rows)).item()
    sft.eval()
    policy = [_answer_logp(model, PROMPT, a) for a in (CHOSEN, REJECTED)]  # fresh adapter: the base model
    reference = [_answer_logp(sft, PROMPT, a) for a in (CHOSEN, REJECTED)]
    logits = beta * ((policy[0] - reference[0]) - (policy[1] - reference[1]))
    assert abs(logits) > 1e-3  # the reference is not the policy
    assert loss == pytest.approx(math.log(1 + math.exp(-logits)), rel=1e-4)


def test_ref_adapters_with_full_training_is_one_line(qwen2_dir, tmp_path):
    from swift.rlhf.base import use_base_as_reference
    from swift.utils import SwiftError
    with pytest.raises(SwiftError, match=r'--ref_adapters: .* \(--train_type lora\)'):
        use_base_as_reference(AutoModelForCausalLM.from_pretrained(qwen2_dir), [str(tmp_path)])


def test_teacher_and_reference_load_with_their_own_type_revision_and_adapters(qwen2_dir, tmp_path, monkeypatch):
    import torch

    from swift.arguments import parse_args
    from swift.pipelines import rlhf as pipeline
    from swift.rlhf.arguments import RLHFArguments
    from tests.rlhf.test_losses import _policy
    sft = _policy(qwen2_dir, seed=1)
    sft.save_pretrained(str(tmp_path / 'sft'))
    merged = sft.merge_and_unload()
    args = parse_args(RLHFArguments, ['--rlhf_type', 'gkd', '--model', qwen2_dir, '--dataset', 'd.jsonl',
                                      '--teacher_model', qwen2_dir, '--teacher_adapters', str(tmp_path / 'sft'),
                                      '--torch_dtype', 'float32'])
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    teacher = pipeline._teacher_model(args, pipeline._Run(None, tokenizer, str(tmp_path)))
    for (name, param), expected in zip(teacher.named_parameters(), merged.parameters()):
        assert torch.allclose(param, expected, atol=1e-5), name
    assert not any(p.requires_grad for p in teacher.parameters())

    seen = []
    monkeypatch.setattr(pipeline, 'load_model', lambda a, model_id=None: seen.append(
        (model_id, a.model_type, a.model_revision)) or (torch.nn.Linear(1, 1), None))
    args = parse_args(RLHFArguments, ['--rlhf_type', 'dpo', '--model', qwen2_dir, '--dataset', 'd.jsonl',
                                      '--train_type', 'full', '--ref_model', 'other/ref', '--ref_model_type', 'qwen2',
                                      '--ref_model_revision', 'v1', '--model_revision', 'main'])
    pipeline._reference_model(args, None)
    assert seen == [('other/ref', 'qwen2', 'v1')] and args.model_revision == 'main'


def test_gkd_log_completions_writes_the_students_samples(qwen2_dir, tmp_path):
    import json
    pairs = os.path.join(DATA, 'pairs.jsonl')
    result = rlhf_main(['--rlhf_type', 'gkd', '--model', qwen2_dir, '--teacher_model', qwen2_dir, '--dataset', pairs,
                        '--max_completion_length', '3', '--per_device_train_batch_size', '2', '--max_steps', '2',
                        '--lmbda', '1', '--log_completions', 'true', '--save_strategy', 'no',
                        '--output_dir', str(tmp_path), *COMMON])
    lines = [json.loads(line) for line in open(os.path.join(result['run_dir'], 'completions.jsonl'))]
    assert [line['step'] for line in lines] == [0, 0, 1, 1]
    assert all(set(line) == {'step', 'prompt', 'completion'} and line['prompt'] for line in lines)


def test_reward_adapters_over_a_plain_base_score_as_the_rm_checkpoint(qwen2_dir, reward_checkpoint):
    import torch

    from swift.arguments import parse_args
    from swift.pipelines import rlhf as pipeline
    from swift.rlhf.arguments import RLHFArguments
    from swift.utils import SwiftError
    base = ['--rlhf_type', 'ppo', '--model', qwen2_dir, '--dataset', 'd.jsonl']
    args = parse_args(RLHFArguments, [*base, '--reward_model', qwen2_dir, '--reward_adapters', reward_checkpoint,
                                      '--reward_model_type', 'qwen2'])
    merged = pipeline._reward_model(args)
    trained = pipeline._reward_model(parse_args(RLHFArguments, [*base, '--reward_model', reward_checkpoint]))
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits.float(), trained(input_ids=ids).logits.float(), atol=1e-4)
    args = parse_args(RLHFArguments, [*base, '--reward_model', qwen2_dir, qwen2_dir, '--reward_model_type', 'a', 'b',
                                      'c'])
    with pytest.raises(SwiftError, match='--reward_model_type has 3 values'):
        pipeline._nth(args.reward_model_type, 3, '--reward_model_type')


def test_ppo_local_rollout_forward_batch_size_bounds_each_generate_and_forward(qwen2_dir, reward_checkpoint, tmp_path,
                                                                              monkeypatch):
    import transformers
    pairs = os.path.join(DATA, 'pairs.jsonl')
    sizes = {'generate': [], 'score': []}
    generate = transformers.GenerationMixin.generate

    def spy(self, *args, **kwargs):
        sizes['generate'].append(len(kwargs['input_ids']))
        return generate(self, *args, **kwargs)
    monkeypatch.setattr(transformers.GenerationMixin, 'generate', spy)
    from swift.rlhf import ppo
    head_outputs = ppo.head_outputs
    monkeypatch.setattr(ppo, 'head_outputs', lambda scorer, inputs: sizes['score'].append(len(inputs['input_ids']))
                        or head_outputs(scorer, inputs))
    result = rlhf_main(['--rlhf_type', 'ppo', '--model', qwen2_dir, '--dataset', pairs, '--reward_model',
                        reward_checkpoint, '--per_device_train_batch_size', '5', '--local_rollout_forward_batch_size',
                        '2', '--num_ppo_epochs', '1', '--response_length', '3', '--max_steps', '1', '--logging_steps',
                        '1', '--save_strategy', 'no', '--output_dir', str(tmp_path), *COMMON])
    # each part: the value model's and the reward model's heads (then the update's own forward passes)
    assert sizes['generate'] == [2, 2, 1] and sizes['score'][:6] == [2, 2, 2, 2, 1, 1]
    assert any('objective/scores' in r for r in result['log_history'])


def test_grpo_log_entropy_and_the_top_entropy_threshold(qwen2_dir, tmp_path):

    def records(*extra):
        return [r for r in _parity_grpo_log(qwen2_dir, tmp_path, 3, *extra) if 'loss' in r]
    logged = records('--log_entropy', 'true', '--top_entropy_quantile', '0.5')
    assert len(logged) == 2
    for r in logged:
        assert 0 < r['entropy/min'] <= r['entropy/mean'] <= r['entropy/max'] and r['entropy/threshold'] > 0
    assert not any('entropy/mean' in r or 'entropy/threshold' in r for r in records())


def test_ppo_num_sample_generations_writes_scored_held_out_samples(qwen2_dir, reward_checkpoint, tmp_path):
    import json
    pairs = os.path.join(DATA, 'pairs.jsonl')

    def run(count: str, out: str) -> str:
        result = rlhf_main(['--rlhf_type', 'ppo', '--model', qwen2_dir, '--dataset', pairs, '--reward_model',
                            reward_checkpoint, '--per_device_train_batch_size', '2', '--per_device_eval_batch_size',
                            '2', '--num_ppo_epochs', '1', '--response_length', '3', '--max_steps', '4',
                            '--num_sample_generations', count, '--save_strategy', 'no', '--eval_strategy', 'no',
                            '--report_to', 'none', '--dataloader_num_workers', '0', '--split_dataset_ratio', '0.25',
                            '--output_dir', str(tmp_path / out)])
        return os.path.join(result['run_dir'], 'sample_generations.jsonl')
    lines = [json.loads(line) for line in open(run('2', 'two'))]
    assert [line['step'] for line in lines] == [0, 0, 2, 2]  # every 4 // 2 steps, the first held-out batch
    assert all(line['query'] and isinstance(line['response'], str) and isinstance(line['score'], float)
               for line in lines)
    assert not os.path.exists(run('0', 'none'))


def test_kl_in_reward_false_parses_and_true_is_one_line(qwen2_dir):
    from swift.arguments import parse_args
    from swift.rlhf.arguments import RLHFArguments
    from swift.utils import SwiftError
    argv = ['--rlhf_type', 'grpo', '--model', qwen2_dir, '--reward_funcs', 'format', '--dataset', 'd.jsonl',
            '--split_dataset_ratio', '0', '--per_device_train_batch_size', '8']
    assert parse_args(RLHFArguments, [*argv, '--kl_in_reward', 'false']).kl_in_reward is False
    with pytest.raises(SwiftError, match='--kl_in_reward true: the KL penalty is a loss term here'):
        parse_args(RLHFArguments, [*argv, '--kl_in_reward', 'true'])
