"""``soft_overlong``: DAPO's soft overlong punishment (https://arxiv.org/abs/2503.14476)."""
from ...utils import SwiftError
from .completions import completion_lengths
from .registry import register_reward


@register_reward('soft_overlong')
class SoftOverlong:
    """0 up to ``L - C``, then a linear fall to -1 at ``L``, and -1 beyond.

    ``L`` is ``soft_max_length`` (default ``max_completion_length``) and ``C`` is ``soft_cache_length``. A ramp,
    rather than a cliff at the truncation point, tells the model that it is getting too long before it is cut off.
    """

    def __init__(self, soft_cache_length: int | None = None, soft_max_length: int | None = None,
                 max_completion_length: int | None = None):
        self.max_len = soft_max_length or max_completion_length
        if soft_cache_length is None or self.max_len is None:
            raise SwiftError('the soft_overlong reward needs --soft_cache_length and --soft_max_length '
                             '(or --max_completion_length)')
        if not 0 < soft_cache_length < self.max_len:
            raise SwiftError(f'--soft_cache_length must be above 0 and below --soft_max_length ({self.max_len}), '
                             f'got {soft_cache_length}')
        self.cache_len = soft_cache_length

    def __call__(self, prompts: list, completions: list, completion_ids: list[list[int]] | None = None,
                 **kwargs) -> list[float]:
        return [self.value(n) for n in completion_lengths(completions, completion_ids)]

    def value(self, length: int) -> float:
        expected = self.max_len - self.cache_len
        return max(min((expected - length) / self.cache_len, 0.0), -1.0)
