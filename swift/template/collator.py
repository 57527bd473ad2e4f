"""Batch encoded rows: padded, or padding-free with a block-diagonal attention mask.

Rows of a multimodal template also carry per-token lists (``mm_token_type_ids``, padded with 0 like text) and the
processor's tensors (``pixel_values``, ``image_grid_thw``, ...), which are concatenated in row order, as the model
reads them. Padding-free rows leave the model to turn their restarting 1-D positions into its own (Qwen2-VL's 3-D
positions: ``model/models/qwen_vl.py``).
"""
from dataclasses import dataclass

import torch

from .base import IGNORE_INDEX
from .vision import MEDIA_TENSOR_KEYS

# Per-token lists besides input_ids and labels, what pads them and their dtype. loss_scale (--loss_scale react,
# hermes, ...: each token's loss weight) pads with 0: padding carries no loss.
TOKEN_KEYS = {'mm_token_type_ids': (0, torch.long), 'loss_scale': (0.0, torch.float32)}


@dataclass
class DataCollator:
    """Pads ``input_ids`` and ``labels`` on the right, or concatenates them (``padding_free``).

    Padding-free rows (and packed rows, which carry ``lengths``) share one sequence; ``position_ids`` restart per row and a 4D block-diagonal causal mask keeps
    rows from attending to each other, which sdpa and eager attention honour on any device.
    """
    pad_token_id: int
    padding_free: bool = False
    mask_dtype: torch.dtype = torch.float32
    # Padded batches are made this many tokens long, rounded up (LongLoRA's shifted groups must divide the length).
    pad_to_multiple_of: int = 1

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self._padding_free(rows) if self.padding_free else self._padded(rows)
        return {**batch, **_media_tensors(rows)}

    def _padded(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(row['input_ids']) for row in rows)
        longest += -longest % self.pad_to_multiple_of
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row['input_ids'])
            input_ids[i, :n] = torch.tensor(row['input_ids'])
            labels[i, :n] = torch.tensor(row['labels'])
            attention_mask[i, :n] = 1
        batch = {'input_ids': input_ids, 'labels': labels, 'attention_mask': attention_mask}
        for key in _token_keys(rows):
            pad, dtype = TOKEN_KEYS[key]
            batch[key] = torch.full((len(rows), longest), pad, dtype=dtype)
            for i, row in enumerate(rows):
                batch[key][i, :len(row[key])] = torch.tensor(row[key], dtype=dtype)
        return batch

    def _padding_free(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        # A packed row already holds several sequences; its 'lengths' says where each ends.
        lengths = [n for row in rows for n in row.get('lengths', [len(row['input_ids'])])]
        input_ids = torch.tensor([t for row in rows for t in row['input_ids']]).unsqueeze(0)
        labels = torch.tensor([t for row in rows for t in row['labels']])
        # Each sequence's first label would be predicted from the previous sequence's last token: mask it.
        starts = torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0)
        labels[starts] = IGNORE_INDEX
        position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
        batch = {'input_ids': input_ids, 'labels': labels.unsqueeze(0), 'position_ids': position_ids,
                 'attention_mask': block_causal_mask(lengths, self.mask_dtype)}
        for key in _token_keys(rows):
            batch[key] = torch.tensor([t for row in rows for t in row[key]], dtype=TOKEN_KEYS[key][1]).unsqueeze(0)
        return batch


def _token_keys(rows: list[dict]) -> list[str]:
    return [key for key in TOKEN_KEYS if key in rows[0]]


def _media_tensors(rows: list[dict]) -> dict[str, torch.Tensor]:
    """The processor's tensors of every row that has them, concatenated in row order."""
    batch = {}
    for key in MEDIA_TENSOR_KEYS:
        parts = [torch.as_tensor(row[key]) for row in rows if key in row]
        if parts:
            batch[key] = torch.cat(parts)
    return batch


def block_causal_mask(lengths: list[int], dtype: torch.dtype) -> torch.Tensor:
    """(1, 1, n, n) additive mask: 0 where a token may attend (same row, not in the future), dtype-min elsewhere."""
    row_of = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    n = row_of.numel()
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    allowed = causal & (row_of[:, None] == row_of[None, :])
    mask = torch.zeros(n, n, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[None, None]
