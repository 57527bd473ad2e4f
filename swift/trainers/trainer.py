"""The Trainer for pt and sft, and the mixin that gives every trainer (sft, rlhf) atomic checkpoints with args.json
and real-token throughput in the logs."""
import inspect
import os
import resource
import shutil
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ..arguments.train_args import TrainerSettings
from ..template.base import IGNORE_INDEX
from ..utils.io import write_json
from .label_logits import count_label_accuracy, head_on_positions, predicting_positions, shifted

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


def peak_memory_gib() -> float:
    """The run's peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**30 if sys.platform == 'darwin' else 2**20)


class SwiftTrainerMixin:
    """Two additions to any transformers ``Trainer`` subclass (ours, or trl's): put it first in the bases.

    - Checkpoints are written under ``.staging/`` and renamed into place when complete, so a kill mid-save never
      leaves a half-written ``checkpoint-N``. Each checkpoint also gets ``args.json`` (``checkpoint_args``), which
      ``swift infer`` and ``swift export`` read.
    - ``tokens_per_second`` (real tokens, padding excluded) joins every training log record, and the closing
      record (transformers' ``train_runtime``, ``train_samples_per_second``...) gets the run's
      ``train_tokens_per_second`` and ``train_peak_memory(GiB)`` (:func:`peak_memory_gib`).
    """

    def __init__(self, *args, checkpoint_args: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.checkpoint_args = checkpoint_args or {}
        self.settings = TrainerSettings()  # the run sets the command's (pipelines/train.py)
        self._staging_root: str | None = None
        self._tokens_since_log = 0
        self._tokens_total = 0  # real tokens of this run's steps (all ranks), for the closing summary
        self._last_log_time = None

    # ---- throughput ----------------------------------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._last_log_time is None:
            self._last_log_time = time.perf_counter()
        tokens = count_real_tokens(inputs)
        self._tokens_since_log += tokens
        self._tokens_total += tokens * self.args.world_size
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if 'train_runtime' in logs:  # transformers' closing record of train(): add tokens/s and peak memory
            if self._tokens_total:  # GRPO's inputs are prompts, its tokens are generated inside the step
                logs['train_tokens_per_second'] = round(self._tokens_total / max(logs['train_runtime'], 1e-9), 3)
            logs['train_peak_memory(GiB)'] = round(peak_memory_gib(), 3)
        if 'loss' in logs and self._last_log_time is not None and self._tokens_since_log:
            elapsed = time.perf_counter() - self._last_log_time
            tokens = self._tokens_since_log * self.args.world_size
            logs['tokens_per_second'] = round(tokens / max(elapsed, 1e-9), 2)
            self._tokens_since_log, self._last_log_time = 0, time.perf_counter()
        if torch.cuda.is_available():
            logs['memory(GiB)'] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        super().log(logs, start_time)

    # ---- --galore_with_embedding -----------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.settings.galore_with_embedding:
            _embeddings_into_galore_group(self.model, optimizer)
        return optimizer

    # ---- --resume_only_model: weights only, no optimizer, scheduler or RNG state ------------------------------
    def _load_optimizer_and_scheduler(self, checkpoint):
        if not self.settings.resume_only_model:
            super()._load_optimizer_and_scheduler(checkpoint)

    def _load_rng_state(self, checkpoint):
        if not self.settings.resume_only_model:
            super()._load_rng_state(checkpoint)

    # ---- --max_shard_size ----------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if not isinstance(model, PreTrainedModel) or 'save_pretrained' in vars(model):  # adapters are small
            return super()._save(output_dir, state_dict)
        model.save_pretrained = partial(type(model).save_pretrained, model, max_shard_size=self.settings.max_shard_size)
        try:
            super()._save(output_dir, state_dict)
        finally:
            del model.save_pretrained

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


def _embeddings_into_galore_group(model, optimizer) -> None:
    """transformers' GaLore projects Linear layers only; move the trainable embedding tables into its projected group
    (before any step, so there is no optimizer state to move)."""
    galore = next((g for g in optimizer.param_groups if 'rank' in g), None)
    if galore is None:
        return
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad}
    for group in optimizer.param_groups:
        if group is not galore:
            moved = [p for p in group['params'] if id(p) in tables]
            group['params'] = [p for p in group['params'] if id(p) not in tables]
            galore['params'].extend(moved)


class SwiftTrainer(SwiftTrainerMixin, Trainer):
    """transformers' Trainer with the mixin's checkpoints and throughput: the trainer of ``swift pt`` and ``sft``.

    Its loss is per-token cross entropy through transformers' ``compute_loss_func`` hook (``--loss_type
    cross_entropy``, ``--enable_dft_loss``); in training the LM head runs on labelled positions only
    (label_logits.py), in evaluation from the first labelled position on (``--use_logits_to_keep``); training logs
    carry ``token_acc`` or ``seq_acc`` (``--acc_strategy``)."""

    label_logits_only = True  # training steps run the LM head on labelled positions only (label_logits.py)

    def __init__(self, *args, weighted_loss_scale: bool = False, **kwargs):
        # --loss_scale react/hermes/...: batches carry per-token weights, which only _token_loss applies
        self.weighted_loss_scale = weighted_loss_scale
        super().__init__(*args, **kwargs)
        self._acc = {'train': [0.0, 0], 'eval': [0.0, 0]}  # correct, counted since the last log
        self._loss_scale = None  # the current batch's weights

    @property
    def settings(self) -> TrainerSettings:
        return self._settings

    @settings.setter
    def settings(self, value: TrainerSettings) -> None:
        # transformers' hook for a loss of one's own: it then also scales the loss for gradient accumulation right
        self._settings = value
        custom = value.loss_type == 'cross_entropy' or value.enable_dft_loss or self.weighted_loss_scale
        self.compute_loss_func = self._token_loss if custom else None

    def _keeps_logits(self, model) -> bool:
        if self.settings.use_logits_to_keep is False:
            return False
        base = self.accelerator.unwrap_model(model)
        base = base.get_base_model() if hasattr(base, 'get_base_model') else base
        return 'logits_to_keep' in inspect.signature(base.forward).parameters

    def _label_head(self, model, labels) -> torch.nn.Module | None:
        """The LM head to run on labelled positions only (label_logits.py), or None where the step keeps every
        position's logits: evaluation (its predictions are whole sequences), --use_logits_to_keep false, models
        without transformers' ``logits_to_keep`` slicing before the head, MoE models adding their router loss."""
        if not (self.label_logits_only and model.training and labels is not None and labels.dim() == 2
                and self._keeps_logits(model)):
            return None
        base = self.accelerator.unwrap_model(model)
        base = base.get_base_model() if hasattr(base, 'get_base_model') else base
        if getattr(base.config, 'output_router_logits', False):  # its loss adds the router's, given the labels
            return None
        return base.get_output_embeddings()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get('labels')
        # --loss_scale react/hermes/...: per-token weights beside the labels, read by _token_loss (not the model)
        inputs = dict(inputs)
        self._loss_scale = inputs.pop('loss_scale', None)
        if self._loss_scale is not None and self.compute_loss_func is None:
            self.compute_loss_func = self._token_loss  # a trainer built without weighted_loss_scale: weights still count
        head = self._label_head(model, labels)
        if head is not None:
            return self._label_positions_loss(model, inputs, head, return_outputs, num_items_in_batch)
        if labels is not None and labels.dim() == 2 and self._keeps_logits(model):
            labelled = (labels != IGNORE_INDEX).any(0).nonzero()
            # the logits of the position before the first label predict it: keep from there on
            start = max(int(labelled[0]) - 1, 0) if len(labelled) else 0
            if start:
                inputs = {**inputs, 'labels': labels[:, start:], 'logits_to_keep': labels.shape[1] - start}
                if self._loss_scale is not None:
                    self._loss_scale = self._loss_scale[:, start:]
        kept = inputs.get('labels')  # transformers pops them from inputs when a loss of one's own is set
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        logits = getattr(outputs, 'logits', None)
        if logits is not None and logits.dim() == 3 and kept is not None:
            self._count_accuracy(logits[:, :-1], kept[:, 1:].to(logits.device),
                                 self._acc['train' if model.training else 'eval'])
        return (loss, outputs) if return_outputs else loss

    def _label_positions_loss(self, model, inputs, head, return_outputs, num_items_in_batch):
        """The training loss from the logits of the labelled positions only; transformers' compute_loss still
        scales it for gradient accumulation and devices, as for any loss of one's own."""
        labels = inputs['labels']
        self._positions = predicting_positions(labels)
        own, self.compute_loss_func = self.compute_loss_func, self._label_token_loss
        try:
            with head_on_positions(head, self._positions):
                loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        finally:
            self.compute_loss_func = own
        logits = outputs.logits
        if logits.dim() == 2:
            count_label_accuracy(logits, shifted(labels, IGNORE_INDEX)[self._positions], self._positions,
                                 self.settings.acc_strategy, self._acc['train'])
        else:
            self._count_accuracy(logits[:, :-1], labels[:, 1:].to(logits.device), self._acc['train'])
        return (loss, outputs) if return_outputs else loss

    def _label_token_loss(self, outputs, labels, num_items_in_batch=None):
        if outputs.logits.dim() == 3:  # the head saw every position (head_on_positions left it alone)
            return self._token_loss(outputs, labels, num_items_in_batch)
        logits = outputs.logits.float()
        targets = shifted(labels, IGNORE_INDEX)[self._positions].to(logits.device)
        scale = None if self._loss_scale is None else shifted(self._loss_scale, 0)[self._positions]
        return self._mean_token_loss(logits, targets, scale, num_items_in_batch)

    def _token_loss(self, outputs, labels, num_items_in_batch=None):
        logits = outputs.logits[:, :-1].float()
        labels = labels[:, 1:].to(logits.device)
        scale = None if self._loss_scale is None else self._loss_scale[:, 1:].reshape(-1)
        return self._mean_token_loss(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), scale,
                                     num_items_in_batch)

    def _mean_token_loss(self, logits, targets, scale, num_items_in_batch):
        """Per-token cross entropy (DFT-weighted, --loss_scale-weighted) over the count of labelled tokens."""
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction='none')
        if self.settings.enable_dft_loss:  # DFT: each token's loss weighted by its (detached) probability
            loss = loss * torch.exp(-loss).detach()
        if scale is not None:
            # ms-swift: each token's loss times its weight, still divided by the count of labelled tokens
            loss = loss * scale.to(loss.device)
        count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
        return loss.sum() / count

    @torch.no_grad()
    def _count_accuracy(self, logits, labels, acc: list) -> None:
        mask = labels != IGNORE_INDEX
        right = (logits.argmax(-1) == labels) | ~mask
        if self.settings.acc_strategy == 'token':
            acc[0] += float((right & mask).sum())
            acc[1] += int(mask.sum())
        else:  # rows of a padded batch (a packed row counts as one sequence)
            rows = mask.any(-1)
            acc[0] += float((right.all(-1) & rows).sum())
            acc[1] += int(rows.sum())

    def log(self, logs: dict, start_time: float | None = None) -> None:
        for split, key, prefix in (('train', 'loss', ''), ('eval', 'eval_loss', 'eval_')):
            correct, count = self._acc[split]
            if key in logs and count:  # --eval_metric acc: the evaluation's accuracy beside its loss
                logs[f'{prefix}{self.settings.acc_strategy}_acc'] = round(correct / count, 6)
                self._acc[split] = [0.0, 0]
        super().log(logs, start_time)
