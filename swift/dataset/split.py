"""Hold out part of the training rows for evaluation, reproducibly."""
import math
import random


def split_rows(rows: list, ratio: float, seed: int, shuffle: bool = True) -> tuple[list, list]:
    """``(train, val)``; the same ``seed`` and ``ratio`` give the same split, so infer can find the val rows."""
    rows = list(rows)
    if shuffle:
        random.Random(seed).shuffle(rows)
    if ratio <= 0 or len(rows) < 2:
        return rows, []
    n_val = min(max(1, math.floor(len(rows) * ratio)), len(rows) - 1)
    return rows[n_val:], rows[:n_val]
