"""The one exception type that reaches the user as a one-line message and exit status 2."""


class SwiftError(Exception):
    """Bad input from the user: a flag, a file, a row. The CLI prints it without a traceback."""


def check_fraction(flag: str, value: float | None) -> None:
    """SwiftError unless ``value`` (a share of memory, say) is unset or in (0, 1]."""
    if value is not None and not 0 < value <= 1:
        raise SwiftError(f'--{flag} must be in (0, 1], got {value}')
