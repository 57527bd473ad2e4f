"""The trainer base of the reference-free preference losses (CPO, SimPO, ORPO), which trl keeps only in
``trl.experimental``: one forward over chosen and rejected answers, the per-answer log-probabilities, a loss.

Batches come from trl's stable preference collator (``rlhf/media.py``'s for image rows): the chosen rows, then
the rejected rows, with a ``completion_mask`` marking the answer tokens.
"""
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from transformers import Trainer

from ..trainers import SwiftTrainerMixin
from .media import preference_collator


@dataclass
class AnswerLogps:
    """Summed log-probabilities of each pair's chosen and rejected answers, and their token counts."""
    chosen: Tensor
    rejected: Tensor
    chosen_tokens: Tensor
    rejected_tokens: Tensor

    @property
    def chosen_mean(self) -> Tensor:
        return self.chosen / self.chosen_tokens

    @property
    def rejected_mean(self) -> Tensor:
        return self.rejected / self.rejected_tokens


@dataclass
class PreferenceLoss:
    """Per-pair loss and the implicit rewards the algorithm assigns each answer (for the log)."""
    loss: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor


LossFn = Callable[[AnswerLogps], PreferenceLoss]


def answer_logps(logits: Tensor, input_ids: Tensor, completion_mask: Tensor) -> AnswerLogps:
    """Sum the log-probability of each answer token given what precedes it; split the batch into chosen/rejected."""
    mask = completion_mask[:, 1:].float()
    token_logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    sums, counts = (token_logps * mask).sum(-1), mask.sum(-1).clamp(min=1)
    chosen, rejected = sums.chunk(2)
    chosen_tokens, rejected_tokens = counts.chunk(2)
    return AnswerLogps(chosen, rejected, chosen_tokens, rejected_tokens)


class MetricsTrainer(SwiftTrainerMixin, Trainer):
    """transformers' Trainer whose ``compute_loss`` appends named metrics to ``_metrics``; each log averages them.
    There are no labels: evaluation is the loss itself (and its metrics)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._metrics = {'train': defaultdict(list), 'eval': defaultdict(list)}

    def log(self, logs: dict, start_time: float | None = None) -> None:
        mode = 'train' if self.model.training else 'eval'
        prefix = '' if mode == 'train' else 'eval_'
        logs.update({prefix + k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v})
        self._metrics[mode].clear()
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


class PreferenceTrainer(MetricsTrainer):
    """transformers' Trainer with a pairwise ``loss_fn`` and the reward metrics of trl's trainers."""

    def __init__(self, *args, loss_fn: LossFn, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Everything but the answer mask is a model input: ids, and a multimodal batch's pixels and token types.
        model_inputs = {key: value for key, value in inputs.items() if key != 'completion_mask'}
        logits = model(**model_inputs, use_cache=False).logits
        logps = answer_logps(logits, inputs['input_ids'], inputs['completion_mask'])
        result = self.loss_fn(logps)
        self._record(logps, result)
        loss = result.loss.mean()
        return (loss, logits) if return_outputs else loss

    def _record(self, logps: AnswerLogps, result: PreferenceLoss) -> None:
        metrics = self._metrics['train' if self.model.training else 'eval']
        chosen, rejected = result.chosen_rewards.detach(), result.rejected_rewards.detach()
        for name, value in {'rewards/chosen': chosen, 'rewards/rejected': rejected,
                            'rewards/margins': chosen - rejected, 'rewards/accuracies': (chosen > rejected).float(),
                            'logps/chosen': logps.chosen.detach(), 'logps/rejected': logps.rejected.detach(),
                            'nll_loss': -logps.chosen_mean.detach()}.items():
            metrics[name].append(self.accelerator.gather_for_metrics(value).mean().item())


def make_preference_trainer(loss_fn: LossFn, args, template=None, **kwargs) -> PreferenceTrainer:
    """``template``: the run's, whose media the batches carry for a multimodal model; None for text."""
    collator = preference_collator(template, kwargs['processing_class'].pad_token_id)
    return PreferenceTrainer(args=args, loss_fn=loss_fn, data_collator=collator, **kwargs)
