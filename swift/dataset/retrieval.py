"""What embedding and reranker training need of a row, checked while loading so errors name the file and line.

ms-swift's form: ``messages`` is the anchor (the query), ``positive_messages`` and ``negative_messages`` are lists of
conversations (one per document). The simpler forms are turned into it:

- ``query`` / ``response`` / ``rejected_response`` (a string or a list of strings): the response is the positive,
  the rejected responses are the negatives;
- ``query`` / ``positive`` / ``negative`` (MTEB's reranking columns; strings or lists of strings).

Embedding documents are ``user`` turns (each is embedded alone); reranker documents are ``assistant`` turns that
follow the query, as ms-swift writes them. ``label`` (a float, or 0/1) is what cosine_similarity, contrastive and
online_contrastive fit.
"""
from typing import Callable

from .errors import RowError

PAIR_LOSSES = ('cosine_similarity', 'contrastive', 'online_contrastive')


def retrieval_check(task_type: str, loss_type: str) -> Callable[[dict], None]:
    """The row check of ``--task_type`` embedding / reranker / generative_reranker with ``--loss_type``."""
    if task_type == 'embedding':
        return lambda row: _check_embedding(row, loss_type)
    return lambda row: _check_reranker(row, loss_type)


def _check_embedding(row: dict, loss_type: str) -> None:
    _to_canonical(row, 'user')
    positives = row['positive_messages']
    if not positives:
        raise RowError("an embedding row needs a positive: add 'positive_messages' (a list holding one conversation),"
                       " or 'response' / 'positive'")
    if len(positives) != 1:
        raise RowError(f"an embedding row takes exactly one positive, got {len(positives)} in 'positive_messages'")
    if loss_type in PAIR_LOSSES:
        _check_label(row, loss_type)
        if row['negative_messages']:
            raise RowError(f"--loss_type {loss_type} compares the anchor with its positive only: drop "
                           "'negative_messages' (infonce uses them)")


def _check_label(row: dict, loss_type: str) -> None:
    label = row.get('label')
    if isinstance(label, bool) or not isinstance(label, (int, float)):
        raise RowError(f"--loss_type {loss_type} needs a numeric 'label' (the pair's similarity), got {label!r}")
    if loss_type != 'cosine_similarity' and label not in (0, 1):
        raise RowError(f"--loss_type {loss_type} takes 'label' 0 or 1, got {label!r}")
    row['label'] = float(label)


def _check_reranker(row: dict, loss_type: str) -> None:
    _to_canonical(row, 'assistant')
    if not row['positive_messages']:
        raise RowError("a reranker row needs a relevant document: add 'positive_messages' (a list of "
                       "conversations), or 'response' / 'positive'")
    if loss_type == 'listwise_reranker' and not row['negative_messages']:
        raise RowError("--loss_type listwise_reranker ranks each positive against negatives: add "
                       "'negative_messages' (or 'rejected_response' / 'negative')")


def _to_canonical(row: dict, doc_role: str) -> None:
    """Rewrite ``row`` in place as ``messages`` (the anchor), ``positive_messages``, ``negative_messages``."""
    messages = row['messages']
    if 'positive_messages' not in row:
        if 'positive' in row:
            positives = _texts(row.pop('positive'), 'positive')
        elif messages and messages[-1]['role'] == 'assistant':  # query/response: the response is the positive
            positives, messages = [messages[-1]['content']], messages[:-1]
        else:
            positives = []
        row['positive_messages'] = [[{'role': doc_role, 'content': text}] for text in positives]
    if 'negative_messages' not in row:
        key = 'negative' if 'negative' in row else 'rejected_response'
        negatives = _texts(row.pop(key), key) if key in row else []
        row['negative_messages'] = [[{'role': doc_role, 'content': text}] for text in negatives]
    row['messages'] = messages
    if not any(m['role'] == 'user' for m in messages):
        raise RowError("the anchor ('messages', or 'query') has no user message")
    for key in ('positive_messages', 'negative_messages'):
        row[key] = _conversations(row[key], key)


def _texts(value, key: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v for v in values):
        raise RowError(f"'{key}' must be a non-empty string or a list of them")
    return values


def _conversations(value, key: str) -> list[list[dict]]:
    """A list of conversations, each a list of ``{'role', 'content'}`` messages with string content."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RowError(f"'{key}' must be a list of conversations (lists of messages), got {type(value).__name__}")
    for conversation in value:
        if not isinstance(conversation, list) or not conversation:
            raise RowError(f"'{key}' must be a list of conversations, each a non-empty list of messages "
                           "(note the two brackets: [[{\"role\": ..., \"content\": ...}]])")
        for message in conversation:
            if not isinstance(message, dict) or not isinstance(message.get('content'), str) \
                    or message.get('role') not in ('system', 'user', 'assistant'):
                raise RowError(f"'{key}': each message needs a role (system, user, assistant) and string content")
    return value
