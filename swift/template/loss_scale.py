"""ms-swift's weighted agent loss scales (``--loss_scale react|hermes|qwen|agentflan|alpha_umi``).

Each scale weighs the characters of an assistant answer that carries loss. The tables are ms-swift's
``swift/loss_scale/config/*.json``:

- keyword tables: ``keyword: [weight of the keyword, weight of the text after it]``; the text after a keyword runs
  to the next keyword; text before the first keyword weighs 1. ``Observation: [2.0, 0.0]`` trains the keyword (the
  model must learn to stop there) and takes the tool's result out of the loss.
- pattern tables (hermes): ``regex: [weight of each match]``; the rest weighs 1.
- agentflan also has query keys: when the round's question contains one, the whole answer weighs that much.

A weight of 0 takes the text out of the loss (its labels become -100), as in ms-swift; other weights ride beside the
labels as ``loss_scale`` and multiply each token's cross entropy in the trainer.
"""
import re
from dataclasses import dataclass, field

WeightedRange = tuple[int, int, float]

REACT_KEYWORDS = {'Action:': (2.0, 2.0), 'Action Input:': (2.0, 2.0), 'Thought:': (1.0, 1.0),
                  'Final Answer:': (1.0, 1.0), 'Observation:': (2.0, 0.0)}


@dataclass(frozen=True)
class WeightTable:
    keywords: dict[str, tuple[float, float]] = field(default_factory=dict)
    patterns: dict[str, float] = field(default_factory=dict)
    queries: dict[str, float] = field(default_factory=dict)


WEIGHTED_LOSS_SCALES = {
    'react': WeightTable(keywords=REACT_KEYWORDS),
    'alpha_umi': WeightTable(keywords={**REACT_KEYWORDS, 'Next:': (2.0, 2.0)}),
    'hermes': WeightTable(patterns={r'<tool_call>.+?</tool_call>': 2.0}),
    'qwen': WeightTable(keywords={'✿FUNCTION✿:': (2.0, 2.0), '✿ARGS✿:': (2.0, 2.0), '✿RETURN✿:': (1.0, 1.0),
                                  '✿RESULT✿:': (2.0, 0.0)}),
    'agentflan': WeightTable(
        keywords={'Name:': (1.0, 3.0), 'Action:': (1.0, 3.0), 'ACTION:': (1.0, 3.0), 'Tool:': (1.0, 3.0),
                  'Command': (1.0, 3.0), 'Arguments:': (1.0, 3.0), 'action input': (1.0, 3.0),
                  'ACTION_INPUT:': (1.0, 3.0), 'Action Input:': (1.0, 3.0), 'Thought:': (1.0, 1.0),
                  'Final Answer:': (1.0, 1.0), 'Observation:': (2.0, 0.0)},
        queries={'What is the tool you want to use': 3.0, 'What are the required parameter names': 3.0,
                 'What is the value of': 3.0, 'What are the required parameter names for this tool': 3.0}),
}


def answer_weights(scale: str, answer: str, query: str = '') -> list[WeightedRange]:
    """Ranges of ``answer`` with their weights, covering all of it (ms-swift's calculate_loss_scale)."""
    table = WEIGHTED_LOSS_SCALES[scale]
    for key, weight in table.queries.items():
        if key in query:
            return [(0, len(answer), weight)]
    if table.keywords:
        return _keyword_weights(table.keywords, answer)
    return _pattern_weights(table.patterns, answer)


def _keyword_weights(keywords: dict[str, tuple[float, float]], answer: str) -> list[WeightedRange]:
    # One alternation in the table's order, as ms-swift splits: at a position the first listed keyword wins.
    found = list(re.finditer('|'.join(re.escape(k) for k in keywords), answer))
    ranges, after_weight, start = [], 1.0, 0
    for match in found:
        ranges.append((start, match.start(), after_weight))
        keyword_weight, after_weight = keywords[match.group()]
        ranges.append((match.start(), match.end(), keyword_weight))
        start = match.end()
    ranges.append((start, len(answer), after_weight))
    return [r for r in ranges if r[0] < r[1]]


def _pattern_weights(patterns: dict[str, float], answer: str) -> list[WeightedRange]:
    combined = '|'.join(f'({p})' for p in patterns)
    ranges, start = [], 0
    for match in re.finditer(combined, answer, flags=re.DOTALL):
        ranges.append((start, match.start(), 1.0))
        ranges.append((match.start(), match.end(), list(patterns.values())[match.lastindex - 1]))
        start = match.end()
    ranges.append((start, len(answer), 1.0))
    return [r for r in ranges if r[0] < r[1]]


def weight_at(position: int, ranges: list[WeightedRange]) -> float:
    """The weight of the text at ``position``; 1 outside every weighted range (the turn's end token, --loss_scale
    all's prompt text)."""
    return next((w for start, end, w in ranges if start <= position < end), 1.0)
