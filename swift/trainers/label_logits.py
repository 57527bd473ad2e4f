"""Logits only where a label is: during a training step the LM head runs on the hidden states of the positions
that predict a labelled token, instead of every position of the padded batch.

The head's matrix product and the float32 cross entropy over the vocabulary are the largest activations of a
causal-LM step (batch x length x vocabulary floats, kept for the backward pass, with their float copies); prompt
turns, system prompts and padding need none of them. The loss is the same per-token cross entropy over the same
tokens, so it equals the full-logits loss up to float rounding (tests/speed/test_sft_label_logits.py)."""
import contextlib

import torch

from ..template.base import IGNORE_INDEX


def predicting_positions(labels: torch.Tensor) -> torch.Tensor:
    """(batch, length) mask of the positions whose logits predict a label: the one before each labelled token."""
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return positions


def shifted(values: torch.Tensor, fill) -> torch.Tensor:
    """``values`` moved one position left (the target of each position), ``fill`` at the end."""
    out = torch.full_like(values, fill)
    out[:, :-1] = values[:, 1:]
    return out


@contextlib.contextmanager
def head_on_positions(head: torch.nn.Module, positions: torch.Tensor):
    """While active, ``head`` gets ``hidden[positions]`` (N, hidden) instead of the (batch, length, hidden) states.

    A model that calls its head on states of another shape (one that reshapes them first) is left alone: its
    logits stay 3-dimensional, and the caller falls back to the full-logits loss."""
    def gather(module, args):
        hidden = args[0]
        if hidden.dim() == 3 and hidden.shape[:2] == positions.shape:
            return (hidden[positions.to(hidden.device)], *args[1:])
        return None
    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def count_label_accuracy(logits: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor, strategy: str,
                         acc: list) -> None:
    """Token or sequence accuracy from the (N, vocabulary) logits of the labelled positions."""
    right = logits.argmax(-1) == targets.to(logits.device)
    if strategy == 'token':
        acc[0] += float(right.sum())
        acc[1] += int(right.numel())
        return
    rows = positions.nonzero()[:, 0].to(right.device)
    wrong = torch.zeros(positions.shape[0], device=right.device).index_add_(0, rows, (~right).float())
    labelled = positions.any(-1).to(right.device)
    acc[0] += float(((wrong == 0) & labelled).sum())
    acc[1] += int(labelled.sum())
