"""What embedding and reranker models compute from a padded batch (rows padded on the right).

- ``embedding``: the hidden state of each row's last token (gte-Qwen2 and Qwen3-Embedding pool this way), L2
  normalised, so a dot product is the cosine similarity. The model is the causal LM's body (``AutoModel``).
- ``reranker``: the one-output sequence-classification head at the last token (transformers' own).
- ``generative_reranker``: the causal LM's logit of "yes" minus that of "no" at the last token (Qwen3-Reranker;
  the tokens are ``GENERATIVE_RERANKER_POSITIVE_TOKEN`` / ``_NEGATIVE_TOKEN``).
"""
import torch
import torch.nn.functional as F

from ..utils import SwiftError
from ..utils.env import generative_reranker_tokens

RETRIEVAL_TASKS = ('embedding', 'reranker', 'generative_reranker')


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token in a right-padded batch."""
    return attention_mask.long().sum(-1) - 1


def embed(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[batch, hidden]`` unit vectors: the last token's final hidden state, L2 normalised."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return F.normalize(hidden[rows, last_positions(attention_mask)].float(), p=2, dim=-1)


def yes_no_ids(tokenizer) -> tuple[int, int]:
    """Token ids of the generative reranker's positive and negative answers (vocabulary tokens, as ms-swift
    looks them up)."""
    tokenizer = getattr(tokenizer, 'tokenizer', tokenizer)  # a processor's tokenizer
    ids = []
    for word in generative_reranker_tokens():
        token_id = tokenizer.convert_tokens_to_ids(word)
        if token_id is None or (token_id == tokenizer.unk_token_id and word != tokenizer.unk_token):
            raise SwiftError(f'generative_reranker: {word!r} is not a token of this tokenizer; set '
                             'GENERATIVE_RERANKER_POSITIVE_TOKEN / _NEGATIVE_TOKEN to tokens it has')
        ids.append(token_id)
    return ids[0], ids[1]


def rerank_logits(model, task_type: str, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  yes_no: tuple[int, int] | None = None) -> torch.Tensor:
    """``[batch]`` relevance logits of query + document rows (before any sigmoid)."""
    if task_type == 'reranker':  # transformers' classifier scores the last token that is not padding
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
    if yes_no is None:
        raise SwiftError('generative_reranker needs the ids of its "yes" and "no" tokens')
    # logits only at the positions some row ends at (transformers' logits_to_keep takes indices)
    last = last_positions(attention_mask)
    keep = torch.unique(last)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    column = torch.searchsorted(keep, last)
    at_end = logits[torch.arange(len(last), device=logits.device), column]
    return (at_end[:, yes_no[0]] - at_end[:, yes_no[1]]).float()
