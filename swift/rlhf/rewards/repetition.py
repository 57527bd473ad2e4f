"""``repetition``: a penalty for repeated word n-grams (https://arxiv.org/abs/2502.03373), as in ms-swift/open-r1."""
from ...utils import SwiftError
from .completions import completion_texts
from .registry import register_reward


@register_reward('repetition')
class Repetition:
    """``max_penalty * (1 - distinct n-grams / n-grams)`` over lower-cased whitespace words.

    0.0 for a text with no repeated n-gram or fewer words than ``repetition_n_grams``; it tends to
    ``repetition_max_penalty`` as the text becomes one n-gram said over and over. Words, not tokens, so that a
    repeated phrase counts the same whatever the tokenizer.
    """

    def __init__(self, repetition_n_grams: int = 3, repetition_max_penalty: float = -1.0):
        if repetition_n_grams < 1:
            raise SwiftError(f'--repetition_n_grams must be at least 1, got {repetition_n_grams}')
        if repetition_max_penalty > 0:
            raise SwiftError(f'--repetition_max_penalty is a penalty and must be <= 0, got {repetition_max_penalty}')
        self.n_grams = repetition_n_grams
        self.max_penalty = repetition_max_penalty

    def __call__(self, prompts: list, completions: list, **kwargs) -> list[float]:
        return [self.penalty(text) for text in completion_texts(completions)]

    def penalty(self, text: str) -> float:
        words = text.lower().split()
        ngrams = list(zip(*(words[i:] for i in range(self.n_grams))))
        if not ngrams:
            return 0.0
        return (1 - len(set(ngrams)) / len(ngrams)) * self.max_penalty
