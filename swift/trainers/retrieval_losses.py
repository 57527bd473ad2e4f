"""ms-swift's embedding and reranker losses (its swift/loss/embedding.py and reranker.py), as pure functions.

Embedding losses take ``embeddings`` ``[texts, dim]`` (unit vectors, the batch's texts row after row: anchor,
positive, negatives...) and the collator's ``labels``; reranker losses take ``logits`` ``[texts]`` and 1/0
``labels`` (each positive followed by its negatives).
"""
import torch
import torch.nn.functional as F

CONTRASTIVE_MARGIN = 0.5  # ms-swift's (and sentence-transformers') margin on the cosine distance


# ---- pair losses: rows of (anchor, positive) and a label -------------------------------------------------------
def _pairs(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return embeddings[0::2], embeddings[1::2]


def cosine_similarity_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between each pair's cosine similarity and its label."""
    first, second = _pairs(embeddings)
    return F.mse_loss(F.cosine_similarity(first, second), labels.to(first.dtype).view(-1))


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pull label-1 pairs together; push label-0 pairs at least the margin apart (cosine distance)."""
    first, second = _pairs(embeddings)
    distance = 1 - F.cosine_similarity(first, second)
    labels = labels.to(distance.dtype)
    losses = 0.5 * (labels * distance.pow(2) + (1 - labels) * F.relu(CONTRASTIVE_MARGIN - distance).pow(2))
    return losses.mean()


def online_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The contrastive loss over the hard pairs only: positives farther than the nearest negative, negatives
    nearer than the farthest positive."""
    first, second = _pairs(embeddings)
    distance = 1 - F.cosine_similarity(first, second)
    negatives, positives = distance[labels == 0], distance[labels == 1]
    hard_negatives = negatives[negatives < (positives.max() if len(positives) > 1 else negatives.mean())]
    hard_positives = positives[positives > (negatives.min() if len(negatives) > 1 else positives.mean())]
    return hard_positives.pow(2).sum() + F.relu(CONTRASTIVE_MARGIN - hard_negatives).pow(2).sum()


# ---- InfoNCE -----------------------------------------------------------------------------------------------------
def split_groups(embeddings: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Each row's texts ``[anchor, positive, negatives...]``: a row's labels are 1 (its positive) then 0s."""
    starts = (labels == 1).nonzero().view(-1).tolist() + [len(labels)]
    # a row has one more text than labels (its anchor), so row i's texts start at starts[i] + i
    return [embeddings[start + i:end + i + 1] for i, (start, end) in enumerate(zip(starts, starts[1:]))]


def _fixed_negatives(group: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """INFONCE_HARD_NEGATIVES: keep the first ``count`` negatives, or repeat random ones up to it."""
    negatives = len(group) - 2
    if negatives >= count:
        return group[:count + 2]
    if negatives == 0:
        return group
    extra = torch.randint(negatives, (count - negatives,), generator=generator) + 2
    return torch.cat([group, group[extra.to(group.device)]])


def infonce_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, use_batch: bool = True,
                 hard_negatives: int | None = None, mask_fake_negative: bool = False, fake_neg_margin: float = 0.1,
                 include_qq: bool = False, include_dd: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross entropy of each anchor over its positive against the negatives: its own hard negatives, and with
    ``use_batch`` every other row's positive and negatives too (in-batch negatives)."""
    groups = split_groups(embeddings, labels)
    if hard_negatives is not None:
        groups = [_fixed_negatives(g, hard_negatives, generator) for g in groups]
    anchors = torch.stack([g[0] for g in groups])
    all_docs = torch.cat([g[1:] for g in groups])
    offsets = torch.tensor([0] + [len(g) - 1 for g in groups]).cumsum(0).tolist()
    loss = embeddings.new_zeros(())
    for i, group in enumerate(groups):
        docs, target = (all_docs, offsets[i]) if use_batch else (group[1:], 0)
        scores = group[0] @ docs.T
        threshold = scores[target].detach() + fake_neg_margin
        parts = [_mask_above(scores, threshold) if mask_fake_negative else scores]
        if use_batch and include_qq:  # the other anchors as negatives too
            qq = (group[0] @ anchors.T).clone()
            qq[i] = float('-inf')
            parts.append(_mask_above(qq, threshold) if mask_fake_negative else qq)
        if use_batch and include_dd:  # the positive against every other document
            dd = (group[1] @ all_docs.T).clone()
            dd[target] = float('-inf')
            parts.append(dd)
        logits = torch.cat(parts) / temperature
        loss = loss + F.cross_entropy(logits.unsqueeze(0), torch.tensor([target], device=logits.device))
    return loss / len(groups)


def _mask_above(scores: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Negatives that score above the positive plus the margin are likely unlabelled positives: left out."""
    return scores.masked_fill(scores > threshold, float('-inf'))


# ---- rerankers -------------------------------------------------------------------------------------------------
def pointwise_reranker_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy of each (query, document) logit against its 1/0 label."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def listwise_reranker_loss(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                           min_group_size: int = 2) -> torch.Tensor:
    """Cross entropy of each group (a positive, then its negatives) picking its positive; groups smaller than
    ``min_group_size`` are left out."""
    starts = (labels == 1).nonzero().view(-1).tolist() + [len(labels)]
    losses = [F.cross_entropy((logits[start:end] / temperature).unsqueeze(0),
                              torch.zeros(1, dtype=torch.long, device=logits.device))
              for start, end in zip(starts, starts[1:]) if end - start >= min_group_size]
    if not losses:
        return logits.sum() * 0.0  # keeps the graph, so the step runs
    return torch.stack(losses).mean()


PAIR_LOSSES = {'cosine_similarity': cosine_similarity_loss, 'contrastive': contrastive_loss,
               'online_contrastive': online_contrastive_loss}
