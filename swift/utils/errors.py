"""The one exception type that reaches the user as a one-line message and exit status 2."""


class SwiftError(Exception):
    """Bad input from the user: a flag, a file, a row. The CLI prints it without a traceback."""
