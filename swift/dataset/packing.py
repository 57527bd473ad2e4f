"""Pack encoded rows into sequences of at most ``max_length`` tokens (first-fit decreasing)."""


def pack_rows(rows: list[dict], max_length: int) -> list[dict]:
    """Each packed row concatenates several rows and records their ``lengths`` for the block-diagonal mask."""
    bins: list[list[dict]] = []
    room: list[int] = []
    for row in sorted(rows, key=lambda r: len(r['input_ids']), reverse=True):
        n = len(row['input_ids'])
        slot = next((i for i, free in enumerate(room) if free >= n), None)
        if slot is None:
            bins.append([])
            room.append(max_length)
            slot = len(bins) - 1
        bins[slot].append(row)
        room[slot] -= n
    return [_concatenated(group) for group in bins]


def _concatenated(group: list[dict]) -> dict:
    """Every per-token list joined end to end (ids, labels, a multimodal row's token types), every tensor (a
    multimodal row's pixels and grids) concatenated in the same order, and ``lengths``."""
    import torch  # here, so that loading datasets (and swift --help) does not import torch
    packed = {'lengths': [len(row['input_ids']) for row in group]}
    for key in dict.fromkeys(key for row in group for key in row):
        if isinstance(next(row[key] for row in group if key in row), torch.Tensor):
            packed[key] = torch.cat([row[key] for row in group if key in row])  # rows without images have none
        else:
            packed[key] = [t for row in group for t in row[key]]
    return packed
