"""The one exception type that reaches the user as a one-line message and exit status 2."""
import json


class SwiftError(Exception):
    """Bad input from the user: a flag, a file, a row. The CLI prints it without a traceback."""


def check_fraction(flag: str, value: float | None) -> None:
    """SwiftError unless ``value`` (a share of memory, say) is unset or in (0, 1]."""
    if value is not None and not 0 < value <= 1:
        raise SwiftError(f'--{flag} must be in (0, 1], got {value}')


def json_object(flag: str, value: str | dict | None, what: str) -> dict | None:
    """A flag whose value is a JSON object: a string on the command line, already a dict when read from args.json."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SwiftError(f'{flag} must be a JSON object: {err}') from None
    if value is not None and not isinstance(value, dict):
        raise SwiftError(f'{flag} must be a JSON object {what}')
    return value
