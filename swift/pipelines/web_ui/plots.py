"""Curves of a run's logging.jsonl while it runs: one panel per metric the page asks for and the run logs."""
import json
from typing import Optional

import matplotlib

matplotlib.use('Agg')  # the page renders figures as images; no display on a server
import matplotlib.pyplot as plt  # noqa: E402


def read_records(path: str) -> list[dict]:
    """The complete lines of logging.jsonl; a line the trainer is still writing is left for the next read."""
    records = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def metric_figure(records: list[dict], metrics: tuple[str, ...]) -> Optional[plt.Figure]:
    """A figure with one panel per metric present in ``records`` (against global_step), or None if none is."""
    series = {m: [(r['global_step'], r[m]) for r in records if isinstance(r.get(m), (int, float))]
              for m in metrics}
    series = {m: points for m, points in series.items() if points}
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3), squeeze=False)
    for ax, (metric, points) in zip(axes[0], series.items()):
        steps, values = zip(*points)
        ax.plot(steps, values, marker='.' if len(points) < 30 else None)
        ax.set_title(metric)
        ax.set_xlabel('step')
    fig.tight_layout()
    plt.close(fig)  # gradio renders it; pyplot need not keep it
    return fig
