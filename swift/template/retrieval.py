"""Encoding for embedding and reranker models, and the collator of their batches.

An embedding text is its conversation rendered with the chat template, closed by the tokenizer's eos token (the
token whose hidden state is pooled, as gte-Qwen2 and Qwen3-Embedding end theirs). A reranker text is the query's
conversation followed by the document's turn, rendered whole: its last token scores the pair.

Training rows (see dataset/retrieval.py) become lists of token-id sequences:

- embedding: ``texts`` = anchor, positive, negatives...; ``label`` (pair losses) — the collator flattens a batch
  into its texts, row after row, with ``labels`` 1 for each positive and 0 for each negative, as ms-swift does;
- reranker: ``texts`` = each positive, then each negative, with their 1/0 ``labels``; the collator draws up to
  MAX_POSITIVE_SAMPLES positives per row, each followed by up to MAX_NEGATIVE_SAMPLES negatives (a listwise group).
"""
import random

import torch

from ..utils import SwiftError
from ..utils.env import reranker_samples
from .base import Template


def embedding_ids(template: Template, messages: list[dict]) -> list[int] | None:
    """Ids of one text to embed; None when --truncation_strategy delete drops it."""
    text = template.render(messages).text if template.use_chat_template else \
        ''.join(m['content'] for m in messages)
    ids = template.tokenizer(text, add_special_tokens=False)['input_ids']
    eos = template.tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids = ids + [eos]
    return _fit(template, ids)


def pair_ids(template: Template, query: list[dict], document: list[dict]) -> list[int] | None:
    """Ids of a (query, document) pair for a reranker: the document's turn after the query's conversation. A
    system message of the document's own wins over the query's (ms-swift's instruction priority)."""
    doc_system = [m for m in document if m['role'] == 'system']
    query = [m for m in query if not (doc_system and m['role'] == 'system')]
    messages = doc_system + query + [m for m in document if m['role'] != 'system']
    encoded = template.encode({'messages': messages})
    return None if encoded is None else encoded['input_ids']


def _fit(template: Template, ids: list[int]) -> list[int] | None:
    limit = template.max_length
    if limit is None or len(ids) <= limit:
        return ids
    if template.truncation_strategy == 'delete':
        return None
    return ids[-limit:] if template.truncation_strategy == 'left' else ids[:limit]


def encode_embedding_row(template: Template, row: dict) -> dict | None:
    """``texts`` (anchor, positive, negatives) and the row's ``label`` where it has one."""
    groups = [row['messages'], *row['positive_messages'], *row['negative_messages']]
    texts = [embedding_ids(template, messages) for messages in groups]
    if any(ids is None for ids in texts):
        return None
    encoded = {'texts': texts}
    if row.get('label') is not None:
        encoded['label'] = float(row['label'])
    return encoded


def encode_reranker_row(template: Template, row: dict) -> dict | None:
    """``texts`` (query + each positive, then query + each negative) and their 1/0 ``labels``."""
    docs = [(doc, 1) for doc in row['positive_messages']] + [(doc, 0) for doc in row['negative_messages']]
    texts = [pair_ids(template, row['messages'], doc) for doc, _ in docs]
    if any(ids is None for ids in texts):
        return None
    return {'texts': texts, 'labels': [label for _, label in docs]}


def pad_right(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    longest = max(map(len, sequences))
    return {'input_ids': torch.tensor([ids + [pad_id] * (longest - len(ids)) for ids in sequences]),
            'attention_mask': torch.tensor([[1] * len(ids) + [0] * (longest - len(ids)) for ids in sequences])}


class RetrievalCollator:
    """Flattens a batch of encoded rows into one right-padded batch of texts with their ``labels``."""

    def __init__(self, task_type: str, pad_token_id: int, seed: int = 42):
        if pad_token_id is None:
            raise SwiftError('the tokenizer has no pad token (nor eos) to pad batches with')
        self.task_type, self.pad_token_id = task_type, pad_token_id
        self.random = random.Random(seed)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        texts, labels = (self._embedding(rows) if self.task_type == 'embedding' else self._reranker(rows))
        return {**pad_right(texts, self.pad_token_id), 'labels': torch.tensor(labels, dtype=torch.float32)}

    @staticmethod
    def _embedding(rows: list[dict]) -> tuple[list, list]:
        texts, labels = [], []
        for row in rows:
            texts += row['texts']
            # a pair loss reads the row's label; infonce reads where each row's positive is (1) and its negatives
            labels += [row['label']] if 'label' in row else [1.0] + [0.0] * (len(row['texts']) - 2)
        return texts, labels

    def _reranker(self, rows: list[dict]) -> tuple[list, list]:
        max_pos, max_neg = reranker_samples()
        texts, labels = [], []
        for row in rows:
            positives = [t for t, label in zip(row['texts'], row['labels']) if label == 1]
            negatives = [t for t, label in zip(row['texts'], row['labels']) if label == 0]
            for positive in self.random.sample(positives, min(len(positives), max_pos)):
                group = self.random.sample(negatives, min(len(negatives), max_neg))
                texts += [positive, *group]
                labels += [1.0] + [0.0] * len(group)
        return texts, labels
