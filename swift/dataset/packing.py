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
    return [{'input_ids': [t for r in group for t in r['input_ids']],
             'labels': [t for r in group for t in r['labels']],
             'lengths': [len(r['input_ids']) for r in group]} for group in bins]
