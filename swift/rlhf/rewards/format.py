"""``format``: does the completion follow the R1 layout ``<think>...</think> <answer>...</answer>``."""
import re

from .completions import completion_texts
from .registry import register_reward

# Python's ``$`` also matches before one final newline, so a reply ending in "\n" still counts.
THINK_ANSWER = re.compile(r'^<think>.*?</think>\s*<answer>.*?</answer>$', re.DOTALL)


@register_reward('format')
def format_reward(prompts: list, completions: list, **kwargs) -> list[float]:
    """1.0 for a completion that is exactly one think block followed by one answer block, else 0.0."""
    return [1.0 if THINK_ANSWER.match(text) else 0.0 for text in completion_texts(completions)]
