"""GRPO's generation on the trained model (transformers, no vLLM), made cheaper without changing what is sampled.

trl's plain path hands ``generate`` every row of the batch, so each prompt is prefilled ``num_generations`` times,
and it decodes through the unmerged LoRA: every adapted linear layer runs three matmuls and a dropout per token.
Here:

* each distinct prompt is prefilled once (all of it but its last token), and its KV cache is copied to the rows of
  its group; ``generate`` then starts from that cache, so its first forward is one token a row. Rows, padding and
  positions are those of the plain path, and sampling draws the same random numbers in the same order;
* the LoRA is merged for the generation: each adapted linear layer gets ``W + scale * B @ A`` as a fresh tensor,
  and its original weight tensor is put back afterwards (exactly: no merge-then-subtract rounding). The sampling
  policy is the model itself, without LoRA dropout (the plain path samples with dropout on, the model being in
  training mode).

Greedy completions are those of the plain path; the logits differ from it only by float rounding (tested in
tests/rlhf/test_grpo_speed_exact.py).
"""
from contextlib import contextmanager
from typing import Iterator

import torch
import transformers.generation.utils as generation_utils
import trl.trainer.utils as trl_utils
from peft.tuners.lora import Linear as LoraLinear

from ..utils import get_logger

logger = get_logger()
# the name generate takes a ready cache by: ``cache`` from transformers 5.x's rename on, ``past_key_values`` before
CACHE_KWARG = 'cache' if 'cache' in getattr(generation_utils, 'ALL_CACHE_NAMES', ()) else 'past_key_values'


def prompt_groups(prompt_ids: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct prompts of a batch in order, runs of identical consecutive rows folded: (prompts, run lengths).
    trl's sampler places a prompt's ``num_generations`` rows next to each other."""
    prompts, counts = [], []
    for ids in prompt_ids:
        if prompts and prompts[-1] == ids:
            counts[-1] += 1
        else:
            prompts.append(list(ids))
            counts.append(1)
    return prompts, counts


def left_padded(prompt_ids: list[list[int]], pad_id: int, multiple_of: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, left-padded to the longest prompt (rounded up to ``multiple_of``), as trl
    pads them for ``generate``."""
    length = max(len(ids) for ids in prompt_ids)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    ids = torch.full((len(prompt_ids), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), length), dtype=torch.long)
    for row, prompt in enumerate(prompt_ids):
        if prompt:
            ids[row, -len(prompt):] = torch.tensor(prompt)
            mask[row, -len(prompt):] = 1
    return ids, mask


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows, as ``generate`` derives them from the attention mask."""
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(attention_mask == 0, 1)


@torch.no_grad()
def generate_with_shared_prefill(model, prompt_ids: list[list[int]], pad_id: int, generation_config,
                                 multiple_of: int | None = None) -> torch.Tensor:
    """``model.generate`` over every row of ``prompt_ids``, each distinct prompt prefilled once. Returns the
    completion ids (rows x generated length), as ``generate`` returns them after the prompt."""
    device = next(model.parameters()).device
    input_ids, attention_mask = (t.to(device) for t in left_padded(prompt_ids, pad_id, multiple_of))
    distinct, counts = prompt_groups(prompt_ids)
    if input_ids.size(1) < 2 or len(distinct) == len(prompt_ids):  # nothing shared: the plain call
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                generation_config=generation_config)
        return output[:, input_ids.size(1):]
    firsts = torch.tensor([0, *counts[:-1]], device=device).cumsum(0)  # each group's first row
    prefix_ids, prefix_mask = input_ids[firsts, :-1], attention_mask[firsts, :-1]
    prefill = model(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=positions(prefix_mask),
                    use_cache=True, logits_to_keep=1)
    cache = prefill.past_key_values
    cache.reorder_cache(torch.arange(len(distinct), device=device).repeat_interleave(
        torch.tensor(counts, device=device)))
    output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=generation_config,
                            **{CACHE_KWARG: cache})
    return output[:, input_ids.size(1):]


def _mergeable(module: torch.nn.Module) -> bool:
    """A vanilla LoRA on a plain float linear layer (no DoRA or other variant, no quantized base), active."""
    if not isinstance(module, LoraLinear) or module.disable_adapters or module.merged:
        return False
    base = module.get_base_layer()
    return (type(base) is torch.nn.Linear and base.weight.is_floating_point() and not module.lora_variant
            and not getattr(module, 'fan_in_fan_out', False))


@contextmanager
def lora_merged(model: torch.nn.Module) -> Iterator[None]:
    """Within: each active vanilla LoRA on a linear layer merged into a fresh copy of its weight, the LoRA branch
    skipped. On exit the original weight tensors are back, untouched."""
    swapped = []
    try:
        for module in model.modules():
            if not _mergeable(module):
                continue
            active = [name for name in module.active_adapters if name in module.lora_A]
            if not active:
                continue
            base = module.get_base_layer()
            original = base.weight.data
            merged = original.clone()
            for name in active:
                merged += module.get_delta_weight(name).to(merged.dtype)
            base.weight.data = merged
            module.merged_adapters = list(active)  # peft's forward then calls the base layer alone
            swapped.append((module, base, original))
        yield
    finally:
        for module, base, original in swapped:
            base.weight.data = original
            module.merged_adapters = []


def completions_up_to_eos(completion_ids: torch.Tensor, eos_ids: list[int]) -> list[list[int]]:
    """Each row's generated ids up to and including its first end token (all of them when it has none)."""
    rows = []
    for row in completion_ids.tolist():
        end = next((i for i, token in enumerate(row) if token in eos_ids), len(row) - 1)
        rows.append(row[:end + 1])
    return rows


@contextmanager
def completion_positions_scored() -> Iterator[None]:
    """Within: trl's fused log-prob head on a CPU scores the completion positions only. trl compacts the scored
    positions on Triton devices alone (elsewhere a varying row count would recompile kernels, e.g. on Neuron); on
    a CPU nothing recompiles, and scoring every prompt position costs the vocabulary projection of the whole prompt
    for each row, which the loss then masks away."""
    original = trl_utils._use_triton

    def compact(device: torch.device) -> bool:
        return device.type == 'cpu' or original(device)
    trl_utils._use_triton = compact
    try:
        yield
    finally:
        trl_utils._use_triton = original
