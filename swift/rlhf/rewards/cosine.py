"""``cosine``: correctness scaled by length (https://arxiv.org/abs/2502.03373), ms-swift's ``cosine`` reward."""
import math

from ...utils import SwiftError
from .accuracy import accuracy_reward
from .completions import completion_lengths
from .registry import register_reward


@register_reward('cosine')
class Cosine:
    """A value that moves along half a cosine from its zero-length value to its max-length value.

    With the defaults a correct answer earns 1.0 when short and 0.5 at ``cosine_max_len``, so brevity pays; a wrong
    one gets -0.5 when short and 0.0 at the limit, so a model that is wrong is pushed to think longer.
    ``value(L) = v_max + (v_0 - v_max) * (1 + cos(pi * min(L, L_max) / L_max)) / 2``. Lengths past ``L_max`` keep
    the max-length value (ms-swift lets the cosine rise again there). None where accuracy is None.
    """

    def __init__(self, cosine_min_len_value_wrong: float = -0.5, cosine_max_len_value_wrong: float = 0.0,
                 cosine_min_len_value_correct: float = 1.0, cosine_max_len_value_correct: float = 0.5,
                 cosine_max_len: int | None = None, max_completion_length: int | None = None):
        self.max_len = cosine_max_len or max_completion_length
        if self.max_len is None or self.max_len <= 0:
            raise SwiftError('the cosine reward needs --cosine_max_len (or --max_completion_length) above 0')
        self.wrong = (cosine_min_len_value_wrong, cosine_max_len_value_wrong)
        self.correct = (cosine_min_len_value_correct, cosine_max_len_value_correct)

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]] | None = None,
                 **kwargs) -> list[float | None]:
        accuracies = accuracy_reward(prompts, completions, **kwargs)
        lengths = completion_lengths(completions, completion_ids)
        return [None if acc is None else self.value(n, acc >= 1.0) for acc, n in zip(accuracies, lengths, strict=True)]

    def value(self, length: int, correct: bool) -> float:
        at_zero, at_max = self.correct if correct else self.wrong
        progress = min(length, self.max_len) / self.max_len
        return at_max + (at_zero - at_max) * (1 + math.cos(math.pi * progress)) / 2
