"""Trainer callbacks: logging.jsonl and a progress bar with loss and tokens/s."""
import time

from tqdm.auto import tqdm
from transformers import TrainerCallback

from ..utils.io import append_jsonl


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}h {seconds % 3600 // 60}m {seconds % 60}s'


class JsonlLoggingCallback(TrainerCallback):
    """Appends every log record to ``logging.jsonl`` with step, progress and timing, as ms-swift writes it."""

    def __init__(self, path: str):
        self.path = path
        self.start = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.time() - self.start
        done = state.global_step / max(state.max_steps, 1)
        record = {**logs, 'global_step': state.global_step,
                  'global_step/max_steps': f'{state.global_step}/{state.max_steps}',
                  'percentage': f'{100 * done:.2f}%', 'elapsed_time': _format_seconds(elapsed),
                  'remaining_time': _format_seconds(elapsed / done - elapsed) if done else '?'}
        append_jsonl(self.path, record)


SUMMARY_FIELDS = (  # (key, label, unit) of the closing training summary
    ('train_runtime', 'train_runtime', 's'), ('train_samples_per_second', 'train_samples_per_second', ''),
    ('train_steps_per_second', 'train_steps_per_second', ''),
    ('train_tokens_per_second', 'train_tokens_per_second', '(real tokens, no padding)'),
    ('train_peak_memory(GiB)', 'peak memory', 'GiB'), ('train_loss', 'train_loss', ''))


def training_summary(logs: dict) -> str:
    """The closing record of a run as an aligned block, one figure a line."""
    lines = ['***** training summary *****']
    for key, label, unit in SUMMARY_FIELDS:
        if key in logs:
            value = logs[key]
            shown = f'{value:.4g}' if isinstance(value, float) else str(value)
            lines.append(f'  {label:<26}= {shown} {unit}'.rstrip())
    return '\n'.join(lines)


class ProgressBarCallback(TrainerCallback):
    """A tqdm bar over optimizer steps showing the latest loss and training tokens/s."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc='Train', dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        shown = {k: f'{logs[k]:.4g}' for k in ('loss', 'tokens_per_second', 'eval_loss') if k in logs}
        if shown:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.write(str({k: v for k, v in logs.items()}))
        if 'train_runtime' in logs:  # the closing record: as a dict (scripts parse it) and as a readable block
            self.bar.write(str(logs))
            self.bar.write(training_summary(logs))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SaveAtEndCallback(TrainerCallback):
    """Always checkpoint the final step, whatever --save_steps is, so every run ends with a usable checkpoint."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True


class MaxEpochsCallback(TrainerCallback):
    """--max_epochs: stop and save at the end of epoch N, also when --num_train_epochs or --max_steps go further."""

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch is not None and state.epoch >= self.max_epochs - 1e-6:
            control.should_training_stop = True
            control.should_save = True
