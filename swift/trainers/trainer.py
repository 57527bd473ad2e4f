"""The Trainer for pt and sft, and the mixin that gives every trainer (sft, rlhf) atomic checkpoints with args.json
and real-token throughput in the logs."""
import os
import shutil
import time

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..utils.io import write_json

STAGING_DIR = '.staging'


def count_real_tokens(inputs: dict) -> int:
    """Tokens that are not padding: a padded batch has a 2D mask; a padding-free one has no padding at all.
    Inputs that are not yet tokens (GRPO's prompts, generated inside the step) count none."""
    if not isinstance(inputs, dict) or 'input_ids' not in inputs:
        return 0
    mask = inputs.get('attention_mask')
    if mask is None or mask.dim() != 2:
        return inputs['input_ids'].numel()
    return int(mask.sum())


class SwiftTrainerMixin:
    """Two additions to any transformers ``Trainer`` subclass (ours, or trl's): put it first in the bases.

    - Checkpoints are written under ``.staging/`` and renamed into place when complete, so a kill mid-save never
      leaves a half-written ``checkpoint-N``. Each checkpoint also gets ``args.json`` (``checkpoint_args``), which
      ``swift infer`` and ``swift export`` read.
    - ``tokens_per_second`` (real tokens, padding excluded) joins every training log record.
    """

    def __init__(self, *args, checkpoint_args: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.checkpoint_args = checkpoint_args or {}
        self._staging_root: str | None = None
        self._tokens_since_log = 0
        self._last_log_time = None

    # ---- throughput ----------------------------------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._last_log_time is None:
            self._last_log_time = time.perf_counter()
        self._tokens_since_log += count_real_tokens(inputs)
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if 'loss' in logs and self._last_log_time is not None and self._tokens_since_log:
            elapsed = time.perf_counter() - self._last_log_time
            tokens = self._tokens_since_log * self.args.world_size
            logs['tokens_per_second'] = round(tokens / max(elapsed, 1e-9), 2)
            self._tokens_since_log, self._last_log_time = 0, time.perf_counter()
        if torch.cuda.is_available():
            logs['memory(GiB)'] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        super().log(logs, start_time)

    # ---- atomic checkpoints --------------------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f'{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}'
        self._staging_root = os.path.join(run_dir, STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(self._staging_root, ignore_errors=True)  # what a killed save left behind
        self.accelerator.wait_for_everyone()
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            staged = os.path.join(run_dir, STAGING_DIR, name)
            write_json(os.path.join(staged, 'args.json'), self.checkpoint_args)
            final = os.path.join(run_dir, name)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staged, final)
            shutil.rmtree(os.path.join(run_dir, STAGING_DIR), ignore_errors=True)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()


class SwiftTrainer(SwiftTrainerMixin, Trainer):
    """transformers' Trainer with the mixin's checkpoints and throughput: the trainer of ``swift pt`` and ``sft``."""
