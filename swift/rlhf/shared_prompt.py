"""One forward per preference pair: the chosen and the rejected answer share their prompt's forward.

trl's DPOTrainer runs the model over ``[chosen rows; rejected rows]``, each row ``prompt + answer``, so every prompt
goes through the model twice (four times with the reference). Here each pair becomes one packed row::

    prompt[0:P] chosen   prompt[P-1] rejected
    \\____ segment A ___/  \\_____ segment B ____/

with an attention mask under which segment A is plain causal and segment B sees ``prompt[0:P-1]`` of segment A and
itself, and position ids that restart at ``P-1`` in segment B. Segment B's copy of the last prompt token sees exactly
what the original sees, so it predicts the first rejected token as the plain row does; every other answer token
sees the same tokens at the same positions as in its own row. The log-probabilities are therefore the plain path's,
up to float rounding, for fewer tokens: ``P + C + R + 1`` instead of ``2 * max(P + C, P + R)`` per pair.

It is installed over trl's fused LM head (``add_fused_lm_head``), which both the policy and the reference forward
(and the precomputation of the reference log-probs) go through, and returns the same ``FusedCausalLMOutput`` in
the batch's own layout, so trl's losses and metrics run unchanged. The LM head scores only the answer positions.
Batches this cannot handle exactly (media inputs, MoE router losses, sliding-window or flash attention, scaled or
soft-capped logits, no shared prompt) take trl's own path.
"""
import functools
import types

import torch
from torch import Tensor
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput

from .packed_forward import CHUNK_SIZE, packable

PLAIN_INPUTS = {'input_ids', 'attention_mask', 'use_cache'}


def share_prompt_forward(model: torch.nn.Module, outputs: tuple[str, ...]) -> bool:
    """Put the packed pair forward over ``model``'s fused LM head (already added by trl); ``outputs`` are the fields
    trl asked that head for. False (and nothing changed) where the model's attention or logits rule it out."""
    if not packable(model):
        return False
    fused_forward = model.forward
    last = {}  # the policy and the reference forward of a step get the same batch: pack it once

    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        given = {key for key, value in kwargs.items() if value is not None}
        if fused_lm_head and not args and labels is not None and given <= PLAIN_INPUTS:
            batch = (kwargs['input_ids'], kwargs.get('attention_mask'), labels)
            if not (last and all(a is b for a, b in zip(last['batch'], batch))):
                last.update(batch=batch, packed=PackedPairs.of(*batch))
            if last['packed'] is not None:
                return _packed_forward(self, last['packed'], outputs)
        return fused_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)

    model.forward = types.MethodType(forward, model)
    return True


class PackedPairs:
    """Where each token of a ``[chosen; rejected]`` batch sits in the packed rows (one row per pair)."""

    def __init__(self, input_ids: Tensor, labels: Tensor, chosen_lengths: Tensor, rejected_lengths: Tensor,
                 prompt_lengths: Tensor):
        self.input_ids, self.labels = input_ids, labels
        self.chosen_lengths, self.prompt_lengths = chosen_lengths, prompt_lengths
        pairs, device = len(chosen_lengths), input_ids.device
        lengths = chosen_lengths + rejected_lengths - prompt_lengths + 1
        slot = torch.arange(int(lengths.max()), device=device).expand(pairs, -1)
        self.valid = slot < lengths[:, None]
        self.in_rejected = slot >= chosen_lengths[:, None]  # segment B
        # the source column in the pair's own row is also the token's position id
        self.columns = torch.where(self.in_rejected, slot - chosen_lengths[:, None] + prompt_lengths[:, None] - 1,
                                   slot).masked_fill(~self.valid, 0)
        rows = torch.arange(pairs, device=device)[:, None] + pairs * self.in_rejected.long()
        self.packed_ids = input_ids[rows, self.columns]
        self._masks = {}

    @classmethod
    def of(cls, input_ids: Tensor, attention_mask: Tensor | None, labels: Tensor) -> 'PackedPairs | None':
        """None where the batch is not right-padded pairs whose rows share a prompt."""
        if attention_mask is None or attention_mask.dim() != 2 or len(input_ids) % 2:
            return None
        lengths = attention_mask.sum(-1)
        if not torch.equal(attention_mask, _ones_up_to(lengths, attention_mask.size(1)).to(attention_mask.dtype)):
            return None  # left padding, holes
        chosen, rejected = input_ids.chunk(2)
        chosen_lengths, rejected_lengths = lengths.chunk(2)
        first_answer = _first_true(labels != -100).chunk(2)
        same = (chosen == rejected) & _ones_up_to(torch.minimum(chosen_lengths, rejected_lengths), chosen.size(1))
        prompt_lengths = _first_true(~same)
        prompt_lengths = torch.minimum(prompt_lengths, torch.minimum(*first_answer))
        if bool((prompt_lengths < 1).any()):
            return None
        return cls(input_ids, labels, chosen_lengths, rejected_lengths, prompt_lengths)

    def attention_mask(self, dtype: torch.dtype, boolean: bool) -> Tensor:
        """(pairs, 1, T, T): causal within a segment; segment B also sees the prompt bar its last token in A."""
        key = (dtype, boolean)
        if key not in self._masks:
            self._masks[key] = self._attention_mask(dtype, boolean)
        return self._masks[key]

    def _attention_mask(self, dtype: torch.dtype, boolean: bool) -> Tensor:
        cols, seg, valid = self.columns, self.in_rejected, self.valid
        slots = torch.arange(cols.size(1), device=cols.device)
        causal = slots[None, :, None] >= slots[None, None, :]
        shared_prompt = ~seg[:, None, :] & (cols[:, None, :] < self.prompt_lengths[:, None, None] - 1)
        visible = causal & (seg[:, :, None] == seg[:, None, :]) | (seg[:, :, None] & shared_prompt)
        visible = visible & valid[:, :, None] & valid[:, None, :]
        visible = visible | torch.eye(cols.size(1), dtype=torch.bool, device=cols.device)  # padding sees itself
        if boolean:
            return visible[:, None]
        return torch.zeros(visible.shape, dtype=dtype, device=cols.device).masked_fill(
            ~visible, torch.finfo(dtype).min)[:, None]

    @functools.cached_property
    def answer_slots(self) -> tuple[Tensor, Tensor, Tensor]:
        """For each scored position of the batch (its label mask after the shift, row-major): the pair, the packed
        slot whose hidden state predicts it, and the label."""
        labels = self.labels[:, 1:]
        rows, cols = (labels != -100).nonzero(as_tuple=True)
        pairs = len(self.chosen_lengths)
        pair = rows % pairs
        rejected = rows >= pairs
        slot = torch.where(rejected, self.chosen_lengths[pair] + cols + 1 - self.prompt_lengths[pair], cols)
        return pair, slot, labels[rows, cols]


def _packed_forward(model, packed: PackedPairs, outputs: tuple[str, ...]) -> FusedCausalLMOutput:
    """trl's fused LM head over the packed rows, scoring only the answer positions, in the batch's layout."""
    lm_head = model.get_output_embeddings()
    boolean = model.config._attn_implementation == 'sdpa'
    dtype = lm_head.weight.dtype
    backbone = model.base_model(input_ids=packed.packed_ids, attention_mask=packed.attention_mask(dtype, boolean),
                                position_ids=packed.columns, use_cache=False)
    pair, slot, labels = packed.answer_slots
    hidden = backbone.last_hidden_state[pair, slot].to(lm_head.weight.device)
    per_token = ChunkedLogProbFunction.apply(hidden, lm_head.weight, lm_head.bias, labels.to(hidden.device), 1.0,
                                             CHUNK_SIZE, None, 1.0, outputs)
    mask = packed.labels[:, 1:].to(hidden.device) != -100
    log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
        None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token)
    loss = -log_probs.sum() / mask.sum().clamp(min=1)
    return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq_probs,
                               mean_logits=mean_logits, is_top1=is_top1, label_mask=mask, aux_loss=None)


def _ones_up_to(lengths: Tensor, width: int) -> Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def _first_true(flags: Tensor) -> Tensor:
    """Index of each row's first True (the row's width where there is none)."""
    width = flags.size(1)
    index = torch.arange(width, device=flags.device).expand_as(flags)
    return torch.where(flags, index, width).min(-1).values
