"""PPO (trl removed its PPOTrainer, so it is written here): each training step samples completions for the batch's
prompts, scores them with a frozen reward model (``--rlhf_type rm``), shapes per-token rewards with a KL penalty to
the reference, estimates advantages with GAE against a trained value model, and runs ``--num_ppo_epochs`` passes
of clipped policy + value updates on that rollout, ``--num_mini_batches`` optimizer steps each. As in ms-swift (trl's
former PPOTrainer), a rollout holds --per_device_train_batch_size x --gradient_accumulation_steps prompts per
process, and each mini-batch's gradient is accumulated over micro-batches of --per_device_train_batch_size rows.

Tensors below are (batch, completion tokens); ``mask`` marks the real completion tokens (up to and including the
first stop token). The value of token t is the value model's output at the position that predicts token t.
"""
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
from torch import Tensor, nn
from accelerate.utils import gather_object
from trl.trainer.utils import disable_dropout_in_model

from ..template import Template
from ..utils import SwiftError
from ..utils.io import append_jsonl
from .base import (AlignmentArguments, Algorithm, SamplingArguments, completion_mask, keep_trainable_float32,
                   trl_config)
from .preference import MetricsTrainer

VALUE_DIR = 'value_model'  # beside the policy in each checkpoint


@dataclass
class PPOArguments(AlignmentArguments, SamplingArguments):
    """PPO's flags (with --reward_model, --max_completion_length, --temperature)."""
    value_model: Optional[str] = field(
        default=None, metadata={'help': 'PPO: a --rlhf_type rm checkpoint to start the value model from; default: '
                                        'the reward model.'})
    num_ppo_epochs: int = field(default=4, metadata={'help': 'PPO: passes over each rollout.'})
    num_mini_batches: int = field(
        default=1, metadata={'help': 'PPO: each pass splits the rollout into this many shuffled mini-batches, one '
                                     'optimizer step each; must divide --per_device_train_batch_size x '
                                     '--gradient_accumulation_steps (the rollout).'})
    missing_eos_penalty: Optional[float] = field(
        default=None, metadata={'help': 'PPO: subtracted from the score of a completion that ends without a stop '
                                        'token (cut off by the length limit).'})
    whiten_rewards: bool = field(default=False, metadata={'help': 'PPO: normalise the per-token rewards.'})
    kl_coef: float = field(default=0.05, metadata={'help': 'PPO: weight of the per-token KL penalty in the reward.'})
    cliprange: float = field(default=0.2, metadata={'help': 'PPO: clipping range of the policy ratio.'})
    vf_coef: float = field(default=0.1, metadata={'help': 'PPO: weight of the value loss.'})
    cliprange_value: float = field(default=0.2, metadata={'help': 'PPO: clipping range of the value update.'})
    gamma: float = field(default=1.0, metadata={'help': 'PPO: discount factor.'})
    lam: float = field(default=0.95, metadata={'help': 'PPO: GAE lambda.'})
    local_rollout_forward_batch_size: int = field(
        default=64, metadata={'help': 'PPO: rows per generate() call and per forward pass of the rollout (its '
                                      'memory peak), not the rollout size.'})
    num_sample_generations: int = field(
        default=10, metadata={'help': 'PPO: times during training that completions for the first held-out batch are '
                                      'sampled, scored and written to sample_generations.jsonl (0 = never; needs '
                                      'held-out rows).'})
    response_length: Optional[int] = field(
        default=None, metadata={'help': "PPO: ms-swift's name for --max_completion_length (wins when set)."})


def check(args) -> None:
    if not args.reward_model:
        raise SwiftError('--rlhf_type ppo needs --reward_model (a checkpoint of --rlhf_type rm)')
    rollout = args.per_device_train_batch_size * args.gradient_accumulation_steps
    if args.local_rollout_forward_batch_size < 1:
        raise SwiftError(f'--local_rollout_forward_batch_size must be at least 1, got '
                         f'{args.local_rollout_forward_batch_size}')
    if args.num_mini_batches < 1 or rollout % args.num_mini_batches:
        raise SwiftError(f'--num_mini_batches {args.num_mini_batches} must divide the rollout of '
                         f'--per_device_train_batch_size x --gradient_accumulation_steps = {rollout} rows')


# ---- the pure pieces ---------------------------------------------------------------------------------------------
def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """Scale to unit variance over the masked tokens (biased variance: a one-token rollout stays finite)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def compute_gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation: delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1},
    with V and A zero after the last token; returns (advantages, returns = advantages + values)."""
    rewards, values = rewards * mask, values * mask  # padding after the end contributes nothing
    advantages = torch.zeros_like(rewards)
    next_value, next_advantage = torch.zeros_like(rewards[:, 0]), torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def ppo_policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                    cliprange: float) -> tuple[Tensor, Tensor]:
    """The clipped surrogate: mean over tokens of max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)), and the share of
    tokens where the clipped term was the larger (those get no gradient)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    return masked_mean(torch.maximum(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                   cliprange_value: float) -> tuple[Tensor, Tensor]:
    """0.5 * mean over tokens of max((V - R)^2, (V_clipped - R)^2), V_clipped kept within cliprange_value of the
    rollout's value; and the share of tokens where the clipped error was the larger."""
    clipped_values = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


def kl_shaped_rewards(scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor,
                      kl_coef: float) -> Tensor:
    """-kl_coef * (log pi - log pi_ref) at every token, plus the reward model's score at each row's last token."""
    rewards = -kl_coef * (logprobs - ref_logprobs) * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards



# ---- the rollout -------------------------------------------------------------------------------------------------
@dataclass
class Rollout:
    input_ids: Tensor  # prompt (left-padded) + completion
    attention_mask: Tensor
    prompt_length: int
    mask: Tensor  # the completion's real tokens
    # filled in by the trainer, in this order
    logprobs: Tensor | None = None
    ref_logprobs: Tensor | None = None
    values: Tensor | None = None
    scores: Tensor | None = None
    advantages: Tensor | None = None
    returns: Tensor | None = None

    @property
    def kl(self) -> Tensor:
        """Per token: log pi - log pi_ref (the sampled-token estimate of the KL)."""
        return (self.logprobs - self.ref_logprobs) * self.mask

    def select(self, rows: Tensor) -> 'Rollout':
        """The rollout of the given rows only: one mini-batch."""
        return Rollout(**{name: value[rows] if isinstance(value, Tensor) else value
                          for name, value in vars(self).items()})

    def forward_kwargs(self) -> dict:
        # Positions from the mask, as generate() uses: left padding must not shift the prompt.
        positions = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {'input_ids': self.input_ids, 'attention_mask': self.attention_mask, 'position_ids': positions}


def token_logprobs(model, rollout: Rollout, temperature: float) -> Tensor:
    """log pi(token | prefix) of each completion token, at the sampling temperature."""
    logits = model(**rollout.forward_kwargs(), use_cache=False).logits[:, rollout.prompt_length - 1:-1]
    log_probs = torch.log_softmax(logits.float() / temperature, -1)
    return log_probs.gather(-1, rollout.input_ids[:, rollout.prompt_length:, None]).squeeze(-1)


def head_outputs(scorer, inputs: dict) -> Tensor:
    """A sequence-classification model's one-output head at every position (its forward keeps only the last)."""
    body = getattr(scorer, scorer.base_model_prefix)
    hidden = body(**inputs, use_cache=False).last_hidden_state
    return scorer.score(hidden).squeeze(-1).float()


class ValueHead(nn.Module):
    """The value model as one module whose forward gives its head's output at every position, so accelerate can
    wrap it like the policy: with several processes, DDP averages its gradients, which it does only for a forward
    that runs through the wrapper."""

    def __init__(self, value_model):
        super().__init__()
        self.value_model = value_model

    def forward(self, **inputs) -> Tensor:
        return head_outputs(self.value_model, inputs)


class PPOTrainer(MetricsTrainer):
    """A Trainer whose step is one PPO iteration; the value model trains in the same optimizer."""

    def __init__(self, *args, settings: PPOArguments, template: Template, reward_model, value_model,
                 ref_model=None, micro_batch_size: Optional[int] = None, **kwargs):
        super().__init__(*args, data_collator=list, **kwargs)  # rows stay conversations until generation
        self.rlhf, self.template = settings, template
        self.micro_batch_size = micro_batch_size or self.args.per_device_train_batch_size
        self.ref_model, self.reward_model, self.value_model = (
            _on_device(m, self.args.device) for m in (ref_model, reward_model, value_model))
        self.stop_ids = sorted(template.single_token_stops())
        for model in (self.model, self.value_model):
            disable_dropout_in_model(model)  # the rollout's and the update's log-probs must use one network
            keep_trainable_float32(model)
        self.value_head = self.accelerator.prepare_model(ValueHead(self.value_model))
        if ref_model is None and not hasattr(self.model, 'disable_adapter'):
            raise SwiftError('--rlhf_type ppo: the reference is the model with its adapter disabled, which only '
                             'LoRA-style tuners allow; use --train_type lora or full')

    def create_optimizer(self):
        optimizer = super().create_optimizer()
        if not getattr(self, '_value_in_optimizer', False):
            params = [p for p in self.value_model.parameters() if p.requires_grad]
            optimizer.add_param_group({'params': params, 'weight_decay': self.args.weight_decay})
            self._value_in_optimizer = True
        return optimizer

    # ---- rollout ----
    @torch.no_grad()
    def _rollout(self, model, rows: list[dict]) -> Rollout:
        """Generation and the rollout's forward passes run --local_rollout_forward_batch_size rows at a time."""
        model.eval()
        prompt_ids, prompt_mask = self._encode_prompts(rows)
        s = self.rlhf
        chunk = s.local_rollout_forward_batch_size
        pad_id = self.processing_class.pad_token_id
        pieces = [self.accelerator.unwrap_model(model).generate(
            input_ids=ids, attention_mask=attention, max_new_tokens=s.max_completion_length,
            do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or 0,
            pad_token_id=pad_id, eos_token_id=self.stop_ids)
            for ids, attention in zip(prompt_ids.split(chunk), prompt_mask.split(chunk))]
        width = max(piece.shape[1] for piece in pieces)  # a piece whose rows all stopped early is padded
        sequences = torch.cat([torch.nn.functional.pad(piece, (0, width - piece.shape[1]), value=pad_id)
                               for piece in pieces])
        mask = completion_mask(sequences[:, prompt_ids.shape[1]:], self.stop_ids)
        rollout = Rollout(sequences, torch.cat([prompt_mask, mask.long()], -1), prompt_ids.shape[1], mask)
        parts = [self._score_part(model, rollout.select(rows)) for rows in torch.arange(len(rows)).split(chunk)]
        for name in ('logprobs', 'ref_logprobs', 'values', 'scores'):
            setattr(rollout, name, torch.cat([getattr(part, name) for part in parts]))
        if s.missing_eos_penalty is not None:
            completions = sequences[:, rollout.prompt_length:]
            ended = torch.isin(completions, torch.tensor(self.stop_ids, device=completions.device)).any(-1)
            rollout.scores = rollout.scores - s.missing_eos_penalty * (~ended).float()
        return rollout

    def _score_part(self, model, rollout: Rollout) -> Rollout:
        """Log-probabilities, reference log-probabilities, values and reward-model scores of some rollout rows."""
        mask, s = rollout.mask, self.rlhf
        with self.compute_loss_context_manager():
            rollout.logprobs = token_logprobs(model, rollout, s.temperature)
            rollout.ref_logprobs = self._ref_logprobs(model, rollout)
            rollout.values = self._values(rollout) * mask
            last = (mask.sum(-1).long() - 1).clamp(min=0)
            rollout.scores = head_outputs(self.reward_model, rollout.forward_kwargs())[:, rollout.prompt_length:][
                torch.arange(len(mask)), last]
        return rollout

    def _encode_prompts(self, rows: list[dict]) -> tuple[Tensor, Tensor]:
        """Left-padded prompt ids encoded by our template (as GRPO encodes them), and their attention mask."""
        ids = [self.template.encode_prompt(row['prompt']) for row in rows]
        width = max(map(len, ids))
        pad = self.processing_class.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=self.args.device)
        attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=self.args.device)
        return input_ids, attention

    def _ref_logprobs(self, model, rollout: Rollout) -> Tensor:
        """Full training: the frozen copy; LoRA: the same model with its adapter disabled."""
        if self.ref_model is not None:
            return token_logprobs(self.ref_model, rollout, self.rlhf.temperature)
        with self.accelerator.unwrap_model(model).disable_adapter():
            return token_logprobs(model, rollout, self.rlhf.temperature)

    def _values(self, rollout: Rollout) -> Tensor:
        return self.value_head(**rollout.forward_kwargs())[:, rollout.prompt_length - 1:-1]

    def _advantages(self, rollout: Rollout) -> None:
        s, mask = self.rlhf, rollout.mask
        rewards = kl_shaped_rewards(rollout.scores, rollout.logprobs, rollout.ref_logprobs, mask, s.kl_coef)
        if s.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False) * mask
        advantages, rollout.returns = compute_gae(rewards, rollout.values, mask, s.gamma, s.lam)
        rollout.advantages = masked_whiten(advantages, mask) * mask

    # ---- update ----
    def training_step(self, model, inputs, num_items_in_batch=None):
        """Rollout, then --num_ppo_epochs passes over it, one optimizer step per shuffled mini-batch. The grads are
        left empty, so the Trainer's own optimizer step after this is a no-op; its scheduler and logging go on."""
        rollout = self._rollout(model, inputs)
        self._advantages(rollout)
        model.train()
        self.value_model.train()
        for _ in range(self.rlhf.num_ppo_epochs):
            order = torch.randperm(len(rollout.input_ids), device=rollout.input_ids.device)
            for rows in order.chunk(self.rlhf.num_mini_batches):
                for micro in rows.split(self.micro_batch_size):  # gradient accumulation within the mini-batch
                    loss = self._ppo_loss(model, rollout.select(micro))
                    self.accelerator.backward(loss * len(micro) / len(rows))
                if self.args.max_grad_norm:
                    self._clip_gradients(model)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self._record_rollout(rollout)
        self._maybe_sample_generations(model)
        return loss.detach()

    def _maybe_sample_generations(self, model) -> None:
        """As trl's former PPOTrainer: --num_sample_generations times over the run (at steps 0, f, 2f, ...), the
        first held-out batch's completions with their scores, here one sample_generations.jsonl line each."""
        count = self.rlhf.num_sample_generations
        if count <= 0 or self.eval_dataset is None:
            return
        every = max(1, self.state.max_steps // count)
        if self.state.global_step % every:
            return
        rows = next(iter(self.get_eval_dataloader()))
        rollout = self._rollout(model, rows)
        model.train()
        decode = self.processing_class.decode
        lines = [{'step': self.state.global_step, 'query': decode(ids[:rollout.prompt_length][mask.bool()]),
                  'response': decode(ids[rollout.prompt_length:][done.bool()], skip_special_tokens=True),
                  'score': score.item()}
                 for ids, mask, done, score in zip(rollout.input_ids, rollout.attention_mask[:, :rollout.prompt_length],
                                                   rollout.mask, rollout.scores)]
        for line in gather_object(lines):
            if self.accelerator.is_main_process:
                append_jsonl(os.path.join(self.args.output_dir, 'sample_generations.jsonl'), line)

    def _clip_gradients(self, model) -> None:
        """Each model on its own: a fully trained value model's gradients would otherwise swamp a LoRA policy's
        in a joint norm. Logged here, as the Trainer's own clip afterwards finds no gradients."""
        norms = {}
        for name, module in (('grad_norm', model), ('val/grad_norm', self.value_model)):
            params = [p for p in module.parameters() if p.requires_grad]
            norms[name] = self.accelerator.clip_grad_norm_(params, self.args.max_grad_norm)
        self._add_metrics(norms)

    def _ppo_loss(self, model, rollout: Rollout) -> Tensor:
        s, mask = self.rlhf, rollout.mask
        with self.compute_loss_context_manager():
            logprobs = token_logprobs(model, rollout, s.temperature)
            values = self._values(rollout)
        policy_loss, policy_clipfrac = ppo_policy_loss(logprobs, rollout.logprobs, rollout.advantages, mask,
                                                       s.cliprange)
        value_loss, value_clipfrac = ppo_value_loss(values, rollout.values, rollout.returns, mask,
                                                    s.cliprange_value)
        self._add_metrics({'loss/policy': policy_loss, 'loss/value': value_loss, 'policy/clipfrac': policy_clipfrac,
                           'val/clipfrac': value_clipfrac})
        return policy_loss + s.vf_coef * value_loss

    def _record_rollout(self, rollout: Rollout) -> None:
        kl = rollout.kl.sum(-1)
        self._add_metrics({'objective/scores': rollout.scores, 'objective/kl': kl,
                           'objective/rlhf_reward': rollout.scores - self.rlhf.kl_coef * kl,
                           'val/mean': masked_mean(rollout.values, rollout.mask),
                           'completions/mean_length': rollout.mask.sum(-1)})

    def _add_metrics(self, values: dict) -> None:
        metrics = self._metrics['train' if self.model.training else 'eval']
        for name, value in values.items():
            metrics[name].append(self.accelerator.gather_for_metrics(value.detach().float()).mean().item())

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation samples completions for the held-out prompts: its loss is minus their mean score."""
        rollout = self._rollout(model, inputs)
        self._add_metrics({'objective/scores': rollout.scores, 'objective/kl': rollout.kl.sum(-1)})
        return -rollout.scores.mean().detach(), None, None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The policy as the Trainer saves it; the value model beside it, in ``value_model/``."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            self.value_model.save_pretrained(os.path.join(output_dir or self.args.output_dir, VALUE_DIR))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Resuming restores the value model too (its optimizer state comes back with the policy's)."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(self.value_model).from_pretrained(os.path.join(resume_from_checkpoint, VALUE_DIR))
        self.value_model.load_state_dict(saved.state_dict())


def _on_device(model, device):
    """Models that --device_map spread over devices stay where accelerate put them."""
    if model is None or getattr(model, 'hf_device_map', None):
        return model
    return model.to(device)


def make_trainer(training, settings: PPOArguments, *, template: Template, reward_model, value_model,
                 **kwargs) -> PPOTrainer:
    # The trainer needs the prompt column, which no model forward takes. One Trainer step is one rollout of
    # per-device batch x accumulation rows; the accumulation happens inside it, over micro-batches.
    micro_batch_size = training.per_device_train_batch_size
    training = trl_config(type(training), training, remove_unused_columns=False, gradient_accumulation_steps=1,
                          per_device_train_batch_size=micro_batch_size * training.gradient_accumulation_steps)
    if settings.response_length is not None:
        settings = replace(settings, max_completion_length=settings.response_length)
    return PPOTrainer(args=training, settings=settings, template=template, reward_model=reward_model,
                      value_model=value_model, micro_batch_size=micro_batch_size, **kwargs)


PPO = Algorithm(rows='prompt', encoding='prompt', make_trainer=make_trainer, arguments=PPOArguments,
                needs=('ref_model', 'template', 'reward_model', 'value_model'), check=check)
