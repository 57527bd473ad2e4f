"""``accuracy``: does the completion's final answer equal the dataset's ``solution``, as math_verify judges it."""
import re

from ...utils import SwiftError
from .completions import completion_texts
from .registry import register_reward

_ANSWER_TAG = re.compile(r'<answer>(.*?)</answer>', re.DOTALL)


@register_reward('accuracy')
def accuracy_reward(prompts: list, completions: list, solution: list | None = None,
                    **kwargs) -> list[float | None]:
    """1.0 when math_verify's ``verify(gold, answer)`` holds, else 0.0; None when the gold cannot be parsed.

    An unparsable solution gives None rather than ms-swift's 0.0: trl turns it into NaN, which adds nothing to the
    summed reward and stays out of the logged mean, so a broken row does not pull down the reported accuracy.
    """
    if solution is None:
        raise SwiftError("the accuracy reward needs a 'solution' column in the dataset")
    return [answer_score(text, gold) for text, gold in zip(completion_texts(completions), solution, strict=True)]


def answer_score(completion: str, solution: str | int | float) -> float | None:
    """The accuracy of one completion; math_verify is imported here because sympy makes it slow to import.

    A solution column may hold numbers (GSM8K-style data), so it is read as text.
    """
    from math_verify import parse, verify
    gold = parse(_inside_answer_tag(str(solution)), extraction_mode='first_match')
    if not gold:
        return None
    return float(verify(gold, _parse_answer(completion)))


def _inside_answer_tag(text: str) -> str:
    """The last ``<answer>`` block's content, or the whole text when there is none."""
    tagged = _ANSWER_TAG.findall(text)
    return tagged[-1].strip() if tagged else text


def _parse_answer(completion: str) -> list:
    """The completion's answer, as open-r1 and ms-swift find it.

    A tagged answer is parsed as is. Free text is parsed only through anchors, ``\\boxed{}`` first: without them it
    would yield whatever number the reasoning happens to mention first.
    """
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse
    tagged = _ANSWER_TAG.findall(completion)
    if tagged:
        return parse(tagged[-1].strip(), extraction_mode='first_match')
    normalization = NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True, boxed='all',
                                        units=True)
    config = LatexExtractionConfig(normalization_config=normalization, boxed_match_priority=0,
                                   try_extract_without_anchor=False)
    return parse(completion, extraction_config=[config], extraction_mode='first_match')
