"""CHORD's pieces (https://arxiv.org/abs/2508.11408), as pure functions: the weight μ of the SFT loss on expert data
at a training step, and that SFT loss. GRPO's own loss variants (SAPO, CISPO, ...) are trl's.

The mixed loss is (1 - μ)·L_GRPO + μ·L_SFT.
"""
import math

from torch import Tensor
from trl.trainer.utils import selective_log_softmax

from ..template.base import IGNORE_INDEX


def chord_mu(step: int, warmup_steps: int, decay_steps: int, peak: float, valley: float) -> float:
    """μ at optimizer step ``step``: linear from 0 to ``peak`` over the warm-up, then a cosine from ``peak`` down to
    ``valley`` over the decay, then ``valley``. Equal peak and valley give a constant μ."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    if step >= warmup_steps + decay_steps:
        return valley
    progress = (step - warmup_steps) / decay_steps
    return valley + (peak - valley) * 0.5 * (1 + math.cos(math.pi * progress))


def chord_sft_loss(logits: Tensor, labels: Tensor, phi: bool) -> Tensor:
    """Mean negative log-likelihood of the expert tokens (labels other than IGNORE_INDEX; logits predict the next
    label). With ``phi`` (CHORD-φ), each token's term is weighted by p·(1 - p), p its current probability, held
    constant: tokens the model is unsure of count most, tokens it already knows or cannot yet produce count little."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    token_logps = selective_log_softmax(logits[:, :-1].float(), targets.clamp(min=0))
    nll = -token_logps
    if phi:
        probs = token_logps.detach().exp()
        nll = nll * probs * (1 - probs)
    return (nll * mask).sum() / mask.sum().clamp(min=1)
