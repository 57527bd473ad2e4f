"""The error of one malformed row."""


class RowError(ValueError):
    """A row that cannot be normalised; the loader adds its file and line."""
