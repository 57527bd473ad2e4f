"""Sequence classification (ms-swift's ``--task_type seq_cls``): each row's ``label`` checked and encoded, batches
of ids with their labels, and the trainer, which logs accuracy beside the loss.

A row is a conversation plus ``label``: an int in [0, num_labels) for single-label classification, a list of such
ints (the labels that apply) for multi-label, a number (or a list of num_labels numbers) for regression. The head's
loss is transformers' for the model's ``problem_type``: cross entropy, binary cross entropy over the labels, or MSE.
"""
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import Trainer

from ..dataset.errors import RowError
from ..template import Template
from ..template.classification import encode_for_classification
from ..utils import get_logger
from .trainer import SwiftTrainerMixin

logger = get_logger()
SINGLE, MULTI, REGRESSION = 'single_label_classification', 'multi_label_classification', 'regression'


def resolve_problem_type(num_labels: int | None, problem_type: str | None) -> str:
    """ms-swift's default: regression for one output, single-label classification for more."""
    return problem_type or (REGRESSION if num_labels == 1 else SINGLE)


def _class_index(value, num_labels: int) -> int:
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():  # csv files give strings
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError(f'label {value!r} is not a class index (an int in [0, {num_labels}))')
    if not 0 <= value < num_labels:
        raise RowError(f'label {value} is out of range: --num_labels {num_labels} allows 0..{num_labels - 1}')
    return value


def _number(value) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise RowError(f'label {value!r} is not a number (--problem_type regression)') from None


def parse_label(row: dict, num_labels: int, problem_type: str):
    """The row's ``label`` in the form the collator batches, or RowError saying what is wrong with it."""
    if row.get('label') is None:
        raise RowError("field 'label' is missing: a --task_type seq_cls row needs its label")
    label = row['label']
    if problem_type == SINGLE:
        return _class_index(label, num_labels)
    if problem_type == MULTI:
        if not isinstance(label, list):
            raise RowError(f'label {label!r} must be a list of class indices (--problem_type multi_label_classification)')
        return sorted({_class_index(value, num_labels) for value in label})
    if isinstance(label, list):
        if len(label) != num_labels:
            raise RowError(f'label has {len(label)} values; --num_labels {num_labels} needs that many')
        return [_number(value) for value in label]
    if num_labels != 1:
        raise RowError(f'label {label!r} is one number; --num_labels {num_labels} needs a list of that many')
    return _number(label)


def label_check(num_labels: int, problem_type: str) -> Callable[[dict], None]:
    """What the dataset loader runs on each row, so a bad label stops the run with its file:line."""
    return lambda row: parse_label(row, num_labels, problem_type)


def encode_classification_rows(template: Template, rows: list[dict], num_labels: int, problem_type: str,
                               split: str) -> list[dict]:
    """``input_ids`` and ``labels`` (the row's label) of each row; rows --truncation_strategy delete drops are
    counted in the log."""
    encoded = []
    for row in rows:
        ids = encode_for_classification(template, row['messages'])
        if ids is not None:
            encoded.append({'input_ids': ids, 'labels': parse_label(row, num_labels, problem_type)})
    dropped = len(rows) - len(encoded)
    (logger.warning if dropped else logger.info)(
        f'{split}: {len(encoded)} rows encoded' + (f'; dropped {dropped} longer than --max_length' if dropped else ''))
    return encoded


@dataclass
class ClassificationCollator:
    """Right-padded ids with their mask (a decoder's head reads the last token that is not padding), and the
    labels as the loss wants them: class indices, a multi-hot float matrix, or floats."""
    pad_token_id: int
    num_labels: int
    problem_type: str

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(row['input_ids']) for row in rows)
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, :len(row['input_ids'])] = torch.tensor(row['input_ids'])
            attention_mask[i, :len(row['input_ids'])] = 1
        return {'input_ids': input_ids, 'attention_mask': attention_mask, 'labels': self._labels(rows)}

    def _labels(self, rows: list[dict]) -> torch.Tensor:
        labels = [row['labels'] for row in rows]
        if self.problem_type == SINGLE:
            return torch.tensor(labels, dtype=torch.long)
        if self.problem_type == MULTI:
            hot = torch.zeros((len(rows), self.num_labels))
            for i, indices in enumerate(labels):
                hot[i, indices] = 1.0
            return hot
        return torch.tensor(labels, dtype=torch.float32)


def count_correct(logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> tuple[int, int]:
    """(right, counted) rows: the arg-max class, or for multi-label the exact set of labels above 0.5."""
    if problem_type == SINGLE:
        return int((logits.argmax(-1) == labels).sum()), len(labels)
    return int(((logits > 0).float() == labels).all(-1).sum()), len(labels)


class SeqClsTrainer(SwiftTrainerMixin, Trainer):
    """transformers' Trainer with the mixin's checkpoints; the head computes its own loss. Classification logs
    ``acc`` (and ``eval_acc``) beside the loss, as ms-swift's seq_cls runs do."""

    def __init__(self, *args, problem_type: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.problem_type = problem_type
        # The head's loss is a mean over the batch: let the Trainer divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._acc = {'train': [0, 0], 'eval': [0, 0]}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if self.problem_type != REGRESSION:
            with torch.no_grad():
                right, count = count_correct(outputs.logits, inputs['labels'].to(outputs.logits.device),
                                             self.problem_type)
            acc = self._acc['train' if model.training else 'eval']
            acc[0] += right
            acc[1] += count
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        for split, key, prefix in (('train', 'loss', ''), ('eval', 'eval_loss', 'eval_')):
            right, count = self._acc[split]
            if key in logs and count:
                logs[f'{prefix}acc'] = round(right / count, 6)
                self._acc[split] = [0, 0]
        super().log(logs, start_time)
