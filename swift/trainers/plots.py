"""PNG curves of a run's logging.jsonl, in ``images/`` as ms-swift users expect."""
import json
import os

PLOTTED = {'loss': 'train_loss', 'learning_rate': 'train_learning_rate', 'grad_norm': 'train_grad_norm',
           'eval_loss': 'eval_loss', 'tokens_per_second': 'train_tokens_per_second'}
# Alignment metrics (rlhf): every key under these prefixes, and these names, train and eval alike.
METRIC_PREFIXES = ('rewards/', 'logps/', 'reward', 'completions/', 'objective/', 'policy/', 'loss/', 'val/')
METRIC_NAMES = {'accuracy', 'margin', 'kl', 'clip_ratio', 'entropy'}


def _metrics_to_plot(records: list[dict]) -> dict[str, str]:
    """The fixed curves, plus each alignment metric found in the log, keyed to its file name."""
    plotted = dict(PLOTTED)
    for key in sorted({k for record in records for k in record}):
        bare = key.removeprefix('eval_')
        if bare.startswith(METRIC_PREFIXES) or bare in METRIC_NAMES:
            name = key if key.startswith('eval_') else f'train_{key}'
            plotted[key] = name.replace('/', '_')
    return plotted


def plot_logging(logging_path: str, images_dir: str) -> list[str]:
    """One PNG per metric present in ``logging_path``; returns the files written."""
    import matplotlib  # imported here: it costs start-up time and is needed only once, at the end
    matplotlib.use('Agg')  # files only: no display on training machines
    import matplotlib.pyplot as plt
    with open(logging_path, encoding='utf-8') as f:
        records = [json.loads(line) for line in f if line.strip()]
    os.makedirs(images_dir, exist_ok=True)
    written = []
    for key, name in _metrics_to_plot(records).items():
        points = [(r['global_step'], r[key]) for r in records if key in r and 'global_step' in r]
        if not points:
            continue
        steps, values = zip(*points)
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.plot(steps, values, marker='o' if len(points) < 30 else None)
        ax.set_xlabel('step')
        ax.set_title(name)
        ax.grid(alpha=0.3)
        path = os.path.join(images_dir, f'{name}.png')
        fig.savefig(path, dpi=100, bbox_inches='tight')
        plt.close(fig)
        written.append(path)
    return written
