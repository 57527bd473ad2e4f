"""Evaluation with EvalScope during training (ms-swift's --eval_use_evalscope).

At each evaluation the trainer schedules (--eval_steps), the model being trained is scored on EvalScope benchmarks
and the scores are logged as ``test_<dataset>`` (ms-swift's names), so they land in logging.jsonl beside eval_loss.
How a model is scored (served on 127.0.0.1, EvalScope's task) is the caller's ``score`` function: the pipeline owns
serving and EvalScope, this callback owns when it happens and what is logged.
"""
import math
from typing import Callable

import torch
from transformers import TrainerCallback

from ..utils import get_logger

logger = get_logger()
# ``score(model, step)``: ``{dataset: overall score}`` of the model as it is at ``step``.
ScoreFn = Callable[[torch.nn.Module, int], dict[str, float]]


class EvalScopeCallback(TrainerCallback):
    """Scores the model with ``score`` whenever the trainer evaluates, and logs the scores through ``log`` (the
    trainer's ``log``: logging.jsonl, TensorBoard, the progress line). Without held-out rows the trainer has no
    evaluation of its own (transformers refuses one without an eval dataset): ``strategy`` and ``steps`` (the
    run's --eval_strategy and --eval_steps) then say when to score."""

    def __init__(self, score: ScoreFn, log: Callable[[dict], None], strategy: str | None = None,
                 steps: float | None = None):
        self.score = score
        self.log = log
        self.strategy = strategy
        self.steps = steps

    def on_train_begin(self, args, state, control, **kwargs):
        if self.steps is not None and self.steps < 1:  # a ratio of the run, as transformers reads --eval_steps
            self.steps = math.ceil(state.max_steps * self.steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        due = self.strategy == 'steps' and self.steps and state.global_step % int(self.steps) == 0
        if (control.should_evaluate or due) and state.is_world_process_zero:  # one server, one report per run
            self._score_and_log(model, state.global_step, control)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.strategy == 'epoch' and state.is_world_process_zero:
            self._score_and_log(model, state.global_step, control)

    def _score_and_log(self, model, step: int, control) -> None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores = self.score(model, step)
        except Exception as err:  # noqa: BLE001 - as ms-swift: a failed benchmark run does not end the training
            logger.warning(f'EvalScope evaluation at step {step} failed: {type(err).__name__}: {err}')
            scores = {}
        finally:
            model.train(was_training)
        if scores:
            should_log = control.should_log  # logging resets it, which would drop this step's training loss line
            self.log({f'test_{name}': value for name, value in scores.items()})
            control.should_log = should_log
