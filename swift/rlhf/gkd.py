"""GKD (Agarwal et al. 2024, "On-Policy Distillation of Language Models"): the student learns the teacher's
next-token distributions over completions that are, batch by batch, with probability --lmbda the student's own
samples (on-policy), else the dataset's answers, or with --seq_kd the teacher's samples.

trl keeps its GKDTrainer only in ``trl.experimental``, and its stable DistillationTrainer (trl 1.16) trains on the
student's own samples only: no --lmbda mix with the dataset's answers, no --seq_kd, and prompts through the
tokenizer's chat template rather than ours. So this is a small one on our ``MetricsTrainer``. Batches hold
the prompts padded on the left (generation continues them) and the completions padded on the right, joined into
``input_ids``; a sampled completion replaces the dataset's before the step.
"""
import math
import random
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from torch import Tensor
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import pad

from ..utils import SwiftError
from ..utils.io import append_jsonl
from .base import AlignmentArguments, Algorithm, SamplingArguments, completion_mask
from .preference import MetricsTrainer


@dataclass
class GKDArguments(AlignmentArguments, SamplingArguments):
    teacher_model: Optional[str] = field(
        default=None, metadata={'help': 'GKD: the teacher, a local folder or hub id loaded like --model; it must '
                                        "share the student's tokenizer."})
    log_completions: bool = field(
        default=False, metadata={'help': "GKD: write the student's own samples (on-policy batches) to "
                                         'completions.jsonl in the run folder.'})
    teacher_model_type: Optional[str] = field(default=None, metadata={'help': 'GKD: model_type of --teacher_model.'})
    teacher_model_revision: Optional[str] = field(
        default=None, metadata={'help': 'GKD: hub revision of --teacher_model.'})
    teacher_adapters: list[str] = field(
        default_factory=list, metadata={'help': 'GKD: adapters (e.g. an SFT checkpoint) merged into the teacher.'})
    lmbda: float = field(
        default=0.5, metadata={'help': "GKD: share of batches trained on the student's own samples (on-policy)."})
    seq_kd: bool = field(
        default=False, metadata={'help': "GKD: off-policy batches use the teacher's samples, not the dataset's "
                                         'answers.'})
    sft_alpha: float = field(
        default=0.0, metadata={'help': "GKD: add this times the student's NLL of the completion, on batches that "
                                       "are not the student's own samples."})
    gkd_logits_topk: Optional[int] = field(
        default=None, metadata={'help': "GKD: compare the two models only on the teacher's top-k tokens at each "
                                        'position, each side renormalised over them (unset: the whole vocabulary).'})


def check(args: GKDArguments) -> None:
    if not args.teacher_model:
        raise SwiftError('--rlhf_type gkd needs --teacher_model (a local folder or hub id)')
    for name in ('lmbda', 'beta'):
        if not 0 <= getattr(args, name) <= 1:
            raise SwiftError(f'--{name} must lie in [0, 1] for gkd, got {getattr(args, name)}')
    if args.sft_alpha < 0:
        raise SwiftError(f'--sft_alpha must be at least 0, got {args.sft_alpha}')
    if args.gkd_logits_topk is not None and args.gkd_logits_topk < 1:
        raise SwiftError(f'--gkd_logits_topk must be at least 1, got {args.gkd_logits_topk}')


def generalized_jsd_loss(student_logits: Tensor, teacher_logits: Tensor, labels_mask: Tensor, beta: float,
                         temperature: float = 1.0) -> Tensor:
    """The generalised Jensen-Shannon divergence between the teacher's (T) and the student's (S) next-token
    distributions, both softened by ``temperature``, summed over the vocabulary and averaged over the positions
    ``labels_mask`` marks (the completion tokens), as trl defines it (GKD paper, eq. 1):

        JSD(beta) = beta * KL(T || M) + (1 - beta) * KL(S || M),   M = beta * T + (1 - beta) * S

    At beta = 0 or 1 the mixture is one of the two and this is 0, so there, as in trl, beta = 0 is the forward
    KL(T || S) (the student must cover all the teacher's mass) and beta = 1 the reverse KL(S || T) (the student
    may settle on the teacher's modes).
    """
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if beta == 0:
        per_token = _kl(teacher, student)
    elif beta == 1:
        per_token = _kl(student, teacher)
    else:
        mixture = torch.logsumexp(torch.stack([teacher + math.log(beta), student + math.log1p(-beta)]), dim=0)
        per_token = beta * _kl(teacher, mixture) + (1 - beta) * _kl(student, mixture)
    mask = labels_mask.float()
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def _kl(p_logps: Tensor, q_logps: Tensor) -> Tensor:
    """KL(P || Q) at each position, from log-probabilities (torch's kl_div takes its arguments the other way)."""
    return F.kl_div(q_logps, p_logps, reduction='none', log_target=True).sum(-1)


# ---- batches ---------------------------------------------------------------------------------------------------
def collate(examples: list[dict], pad_token_id: int) -> dict:
    """Rows of ``prompt_ids`` and ``completion_ids`` (the dataset's answer) as one padded batch."""
    prompts = [torch.tensor(e['prompt_ids']) for e in examples]
    completions = [torch.tensor(e['completion_ids']) for e in examples]
    batch = {'prompt_ids': pad(prompts, pad_token_id, 'left'),
             'prompt_mask': pad([torch.ones_like(p) for p in prompts], 0, 'left')}
    return with_completions(batch, pad(completions, pad_token_id), pad([torch.ones_like(c) for c in completions], 0))


def with_completions(batch: dict, completion_ids: Tensor, completion_mask: Tensor) -> dict:
    return {**batch, 'completion_ids': completion_ids, 'completion_mask': completion_mask,
            'input_ids': torch.cat([batch['prompt_ids'], completion_ids], 1),
            'attention_mask': torch.cat([batch['prompt_mask'], completion_mask], 1)}


def cut_at_stop(tokens: Tensor, stop_ids: list[int], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Sampled completions up to and including their first stop token, and their mask (what follows is padding)."""
    mask = completion_mask(tokens, stop_ids)
    return tokens.masked_fill(mask == 0, pad_token_id), mask.long()


# ---- the trainer -----------------------------------------------------------------------------------------------
class GKDTrainer(MetricsTrainer):
    """Distils ``teacher_model`` into the model; logs the loss, the share of on-policy batches and the mean
    completion length. Evaluation scores the dataset's answers."""

    def __init__(self, *args, teacher_model: torch.nn.Module, settings: GKDArguments, stop_token_ids: list[int],
                 completions_path: str | None = None, **kwargs):
        pad_token_id = kwargs['processing_class'].pad_token_id
        super().__init__(*args, data_collator=partial(collate, pad_token_id=pad_token_id), **kwargs)
        self.vocab_size = shared_vocab_size(self.model, teacher_model, len(self.processing_class))
        self.teacher = self.accelerator.prepare_model(teacher_model.requires_grad_(False).eval(), evaluation_mode=True)
        self.rlhf, self.stop_token_ids, self.pad_token_id = settings, stop_token_ids, pad_token_id
        self.completions_path = completions_path

    def training_step(self, model, inputs, num_items_in_batch=None):
        on_policy = random.random() < self.rlhf.lmbda
        if on_policy:
            inputs = self._sampled(model, inputs)
            self._write_completions(inputs)
        elif self.rlhf.seq_kd:
            inputs = self._sampled(self.teacher, inputs)
        self._metrics['train']['on_policy'].append(float(on_policy))
        self._on_policy = on_policy
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._on_policy = False

    def _write_completions(self, inputs: dict) -> None:
        """--log_completions: the student's samples of this step (every process's), one completions.jsonl line
        each, as ms-swift logs them."""
        if not self.completions_path:
            return
        decode = self.processing_class.decode
        rows = [{'step': self.state.global_step, 'prompt': decode(prompt[prompt_mask.bool()]),
                 'completion': decode(completion[completion_mask.bool()], skip_special_tokens=True)}
                for prompt, prompt_mask, completion, completion_mask in zip(
                    inputs['prompt_ids'], inputs['prompt_mask'], inputs['completion_ids'], inputs['completion_mask'])]
        rows = gather_object(rows)
        if self.accelerator.is_main_process:
            for row in rows:
                append_jsonl(self.completions_path, row)

    def _sampled(self, model, inputs: dict) -> dict:
        """``inputs`` with ``model``'s samples, one per prompt, as the completions."""
        with unwrap_model_for_generation(model, self.accelerator) as unwrapped, torch.no_grad():
            output = unwrapped.generate(
                input_ids=inputs['prompt_ids'], attention_mask=inputs['prompt_mask'], do_sample=True,
                temperature=self.rlhf.temperature, top_p=self.rlhf.top_p, top_k=self.rlhf.top_k or 0,
                max_new_tokens=self.rlhf.max_completion_length, eos_token_id=self.stop_token_ids,
                pad_token_id=self.pad_token_id)
        completions = output[:, inputs['prompt_ids'].shape[1]:]
        return with_completions(inputs, *cut_at_stop(completions, self.stop_token_ids, self.pad_token_id))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs['attention_mask']
        # Positions count real tokens only, so a left-padded prompt reads as it does unpadded.
        forward = {'input_ids': inputs['input_ids'], 'attention_mask': mask, 'use_cache': False,
                   'position_ids': (mask.cumsum(1) - 1).clamp(min=0)}
        student = model(**forward).logits
        with torch.no_grad():
            teacher = self.teacher(**forward).logits
        # The logits at position t predict token t + 1: the completion is predicted from one before it.
        predicting = slice(inputs['prompt_ids'].shape[1] - 1, -1)
        student_logits = student[:, predicting, :self.vocab_size]
        teacher_logits = teacher[:, predicting, :self.vocab_size]
        if self.rlhf.gkd_logits_topk:  # the teacher's top-k tokens only, both sides renormalised over them
            teacher_logits, top = teacher_logits.topk(min(self.rlhf.gkd_logits_topk, self.vocab_size), dim=-1)
            student_logits = student_logits.gather(-1, top)
        loss = generalized_jsd_loss(student_logits, teacher_logits, inputs['completion_mask'], self.rlhf.beta,
                                    self.rlhf.temperature)
        metrics = self._metrics['train' if model.training else 'eval']
        if self.rlhf.sft_alpha > 0 and not getattr(self, '_on_policy', False):
            # ms-swift: the SFT term is added unless the completions are the student's own samples
            sft_loss = completion_nll(student[:, predicting], inputs['completion_ids'], inputs['completion_mask'])
            metrics['sft_loss'].append(sft_loss.item())
            loss = loss + self.rlhf.sft_alpha * sft_loss
        metrics['completion_length'].append(inputs['completion_mask'].sum(1).float().mean().item())
        return (loss, student) if return_outputs else loss


def completion_nll(logits: Tensor, completion_ids: Tensor, completion_mask: Tensor) -> Tensor:
    """The mean negative log-likelihood of the completion tokens (``logits`` predict them, position by position)."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), completion_ids, reduction='none')
    mask = completion_mask.float()
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def shared_vocab_size(student: torch.nn.Module, teacher: torch.nn.Module, tokenizer_size: int) -> int:
    """The logit width the two models share. Widths may differ by unused rows past the tokenizer's tokens (as
    Qwen2.5's small and large models do); a model with fewer rows than the tokenizer has tokens is another
    vocabulary."""
    widths = {'student': student.get_output_embeddings().weight.shape[0],
              'teacher': teacher.get_output_embeddings().weight.shape[0]}
    if min(widths.values()) < tokenizer_size:
        raise SwiftError(f'--teacher_model does not share the student\'s vocabulary: logit widths {widths}, '
                         f'tokenizer {tokenizer_size} tokens')
    return min(widths.values())


def check_teacher_tokenizer(teacher_tokenizer, tokenizer, teacher_model: str) -> None:
    """GKD compares next-token distributions id by id, so the ids must mean the same tokens in both models."""
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise SwiftError(f'--teacher_model {teacher_model}: its tokenizer ({len(teacher_tokenizer)} tokens) differs '
                         f'from the student\'s ({len(tokenizer)}); GKD needs both to share one vocabulary')


def make_trainer(training, settings: GKDArguments, *, teacher_model: torch.nn.Module, stop_token_ids: list[int],
                 completions_path: str | None = None, **kwargs) -> GKDTrainer:
    return GKDTrainer(args=training, teacher_model=teacher_model, settings=settings, stop_token_ids=stop_token_ids,
                      completions_path=completions_path, **kwargs)


GKD = Algorithm(rows='answer', encoding='answer', make_trainer=make_trainer, arguments=GKDArguments,
                needs=('teacher_model', 'stop_token_ids', 'completions_path'), defaults={'beta': 0.5}, check=check)
