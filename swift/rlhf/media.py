"""Batches of image and video alignment rows: the columns trl's preference collators make, plus what a
multimodal model reads besides ids (``pixel_values``, ``image_grid_thw``, ... and ``mm_token_type_ids``).

The template encoded each row's media into tensors (``template/vision.py``); here they are concatenated in the
order the batch's sequences come in, so every forward (policy, reference, KTO's KL pairs) sees the pictures its
prompts name.
"""
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

from ..template import Template
from ..template.vision import MEDIA_TENSOR_KEYS, VisionTemplate
from ..utils import SwiftError


def token_types(input_ids: torch.Tensor, types: dict[int, int]) -> torch.Tensor:
    """transformers' ``mm_token_type_ids`` of a batch: each media token's kind, 0 for text."""
    out = torch.zeros_like(input_ids)
    for token, kind in types.items():
        out[input_ids == token] = kind
    return out


def concat_media(rows: list[dict], prefix: str = '') -> dict[str, torch.Tensor]:
    """The ``prefix``-named media tensors of the rows that have them, concatenated in row order."""
    batch = {}
    for key in MEDIA_TENSOR_KEYS:
        parts = [torch.as_tensor(row[prefix + key]) for row in rows if row.get(prefix + key) is not None]
        if parts:
            batch[key] = torch.cat(parts)
    return batch


def _joined(first: dict, second: dict) -> dict[str, torch.Tensor]:
    return {key: torch.cat([t for t in (first.get(key), second.get(key)) if t is not None])
            for key in dict.fromkeys([*first, *second])}


@dataclass
class MediaPreferenceCollator:
    """DPO, ORPO, CPO, SimPO: the chosen sequences, then the rejected ones (as trl's DataCollatorForPreference),
    padded on the right with a ``completion_mask`` over each answer. A row with its own rejected media carries
    ``rejected_prompt_ids`` and ``rejected_``-prefixed tensors; otherwise both answers follow the same prompt and
    pictures."""
    pad_token_id: int
    types: dict[int, int]

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        own = [row.get('rejected_prompt_ids') is not None for row in rows]
        prompts = [row['prompt_ids'] for row in rows] + [
            row['rejected_prompt_ids'] if has_own else row['prompt_ids'] for row, has_own in zip(rows, own)]
        answers = [row['chosen_ids'] for row in rows] + [row['rejected_ids'] for row in rows]
        ids = [torch.tensor(p + a) for p, a in zip(prompts, answers)]
        masks = [torch.tensor([0] * len(p) + [1] * len(a)) for p, a in zip(prompts, answers)]
        input_ids = pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id)
        batch = {'input_ids': input_ids,
                 'attention_mask': pad_sequence([torch.ones(len(i), dtype=torch.long) for i in ids], batch_first=True),
                 'completion_mask': pad_sequence(masks, batch_first=True),
                 'mm_token_type_ids': token_types(input_ids, self.types)}
        rejected_media = [({f'rejected_{k}': row.get(f'rejected_{k}') for k in MEDIA_TENSOR_KEYS} if has_own
                           else {f'rejected_{k}': row.get(k) for k in MEDIA_TENSOR_KEYS})
                          for row, has_own in zip(rows, own)]
        return {**batch, **_joined(concat_media(rows), concat_media(rejected_media, 'rejected_'))}


@dataclass
class MediaUnpairedCollator:
    """KTO: trl's unpaired batch (each prompt with its answer, and with another row's answer for the KL term),
    plus each prompt's pictures, which both forwards read: a KL pair keeps its prompt's media."""
    base: DataCollatorForUnpairedPreference
    types: dict[int, int]

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.base(rows)
        batch['mm_token_type_ids'] = token_types(batch['input_ids'], self.types)
        if 'KL_input_ids' in batch:
            batch['KL_mm_token_type_ids'] = token_types(batch['KL_input_ids'], self.types)
        return {**batch, **concat_media(rows)}


def is_multimodal(template: Template | None) -> bool:
    return isinstance(template, VisionTemplate)


def preference_collator(template: Template | None, pad_token_id: int):
    """The batcher of pair rows: trl's for text models, ours (with the media) for a multimodal template."""
    if is_multimodal(template):
        return MediaPreferenceCollator(pad_token_id, template.token_types)
    return DataCollatorForPreference(pad_token_id=pad_token_id)


def unpaired_collator(template: Template | None, pad_token_id: int):
    base = DataCollatorForUnpairedPreference(pad_token_id=pad_token_id)
    return MediaUnpairedCollator(base, template.token_types) if is_multimodal(template) else base


def refuse_precomputed_reference(template: Template | None, precompute: bool) -> None:
    """trl's precomputation of reference log-probs runs the model on ids alone, without the pictures."""
    if precompute and is_multimodal(template):
        raise SwiftError('--precompute_ref_log_probs true is not supported for a multimodal model (the reference '
                         'forward would not see the images); leave it false')
