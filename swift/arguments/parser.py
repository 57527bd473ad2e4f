"""argv to an arguments dataclass. Unknown flags and bad values become one line naming the flag: exit 2."""
import difflib
from typing import Sequence, TypeVar

from transformers import HfArgumentParser

from ..utils import SwiftError
from .aliases import rewrite_aliases

T = TypeVar('T')


class _SwiftParser(HfArgumentParser):
    """HfArgumentParser that raises SwiftError instead of printing usage and exiting."""

    def __init__(self, dataclass_type):
        # No abbreviations: `--stream` must not silently mean `--streaming`.
        super().__init__([dataclass_type], allow_abbrev=False)

    def error(self, message: str):
        raise SwiftError(message.replace('argument ', '', 1) if message.startswith('argument ') else message)

    def known_flags(self) -> list[str]:
        return [opt for action in self._actions for opt in action.option_strings
                if opt.startswith('--') and '-' not in opt[2:]]


def _unknown_flag_message(remaining: list[str], known: list[str]) -> str:
    flags = [token.split('=')[0] for token in remaining if token.startswith('--')]
    if not flags:
        return f"unexpected value(s): {' '.join(remaining)}"
    flag = flags[0]
    close = difflib.get_close_matches(flag, known, n=3, cutoff=0.6)
    hint = f"; closest valid: {', '.join(close)}" if close else ''
    return f'unknown flag {flag}{hint}'


def parse_args(cls: type[T], argv: Sequence[str]) -> T:
    parser = _SwiftParser(cls)
    argv = rewrite_aliases(list(argv))
    try:
        args, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except (ValueError, TypeError) as err:  # raised by transformers' own __post_init__ checks
        raise SwiftError(str(err).strip().splitlines()[0]) from None
    if remaining:
        raise SwiftError(_unknown_flag_message(remaining, parser.known_flags()))
    return args
