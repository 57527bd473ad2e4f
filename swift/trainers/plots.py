"""PNG curves of a run's logging.jsonl, in ``images/`` as ms-swift users expect."""
import json
import os

PLOTTED = {'loss': 'train_loss', 'learning_rate': 'train_learning_rate', 'grad_norm': 'train_grad_norm',
           'eval_loss': 'eval_loss', 'tokens_per_second': 'train_tokens_per_second'}


def plot_logging(logging_path: str, images_dir: str) -> list[str]:
    """One PNG per metric present in ``logging_path``; returns the files written."""
    import matplotlib  # imported here: it costs start-up time and is needed only once, at the end
    matplotlib.use('Agg')  # files only: no display on training machines
    import matplotlib.pyplot as plt
    with open(logging_path, encoding='utf-8') as f:
        records = [json.loads(line) for line in f if line.strip()]
    os.makedirs(images_dir, exist_ok=True)
    written = []
    for key, name in PLOTTED.items():
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
