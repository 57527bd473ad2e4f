"""DAPO's dynamic sampling: a group whose completions all earn the same reward has zero advantage and teaches
nothing, so it is replaced by a group, sampled afresh, whose rewards differ.

Works on trl's scored rollout (the dict ``GRPOTrainer._generate_and_score_completions`` returns): rows are
completions, ``num_generations`` consecutive rows per prompt; prompt tensors are left-padded, the rest per-token
tensors right-padded.
"""
import torch
from torch import Tensor

LEFT_PADDED = ('prompt_ids', 'prompt_mask')
RIGHT_PADDED = ('completion_ids', 'completion_mask', 'old_per_token_logps', 'sampling_per_token_logps',
                'ref_per_token_logps', 'importance_sampling_ratio', 'tool_mask')
PER_ROW = ('advantages',)


def flat_groups(advantages: Tensor, group_size: int) -> Tensor:
    """One flag per group: True where every completion's advantage is zero (equal rewards)."""
    return (advantages.view(-1, group_size) == 0).all(dim=1)


def _pad_to(tensor: Tensor, width: int, value: int, left: bool) -> Tensor:
    missing = width - tensor.shape[1]
    if missing <= 0:
        return tensor
    padding = tensor.new_full((tensor.shape[0], missing, *tensor.shape[2:]), value)
    return torch.cat([padding, tensor] if left else [tensor, padding], dim=1)


def replace_groups(batch: dict, fresh: dict, targets: Tensor, sources: Tensor, group_size: int,
                   pad_token_id: int) -> dict:
    """``batch`` with its groups ``targets`` replaced by the groups ``sources`` of ``fresh``. The caller recounts
    ``num_items_in_batch``, a count over every process."""
    rows = lambda groups: (groups[:, None] * group_size + torch.arange(group_size)).flatten()  # noqa: E731
    target_rows, source_rows = rows(targets.cpu()), rows(sources.cpu())
    merged = dict(batch)
    for key in (*LEFT_PADDED, *RIGHT_PADDED, *PER_ROW):
        if key not in batch:
            continue
        old, new = batch[key], fresh[key]
        if key not in PER_ROW:
            width = max(old.shape[1], new.shape[1])
            value = pad_token_id if key.endswith('_ids') else 0
            old, new = (_pad_to(t, width, value, left=key in LEFT_PADDED) for t in (old, new))
        merged[key] = old.clone()
        merged[key][target_rows.to(old.device)] = new[source_rows.to(new.device)]
    return merged
