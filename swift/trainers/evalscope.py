"""Evaluation with EvalScope during training (ms-swift's --eval_use_evalscope).

At each evaluation the trainer schedules (--eval_steps), the model being trained is scored on EvalScope benchmarks
and the scores are logged as ``test_<dataset>`` (ms-swift's names), so they land in logging.jsonl beside eval_loss.
How a model is scored (served on 127.0.0.1, EvalScope's task) is the caller's ``score`` function: the pipeline owns
serving and EvalScope, this callback owns when it happens and what is logged.
"""
from typing import Callable

import torch
from transformers import TrainerCallback

from ..utils import get_logger

logger = get_logger()
# ``score(model, step)``: ``{dataset: overall score}`` of the model as it is at ``step``.
ScoreFn = Callable[[torch.nn.Module, int], dict[str, float]]


class EvalScopeCallback(TrainerCallback):
    """Scores the model with ``score`` whenever the trainer is about to evaluate, and logs them through ``log``
    (the trainer's ``log``: logging.jsonl, TensorBoard, the progress line). Without held-out rows there is no loss
    to evaluate, so the trainer's own evaluation is skipped (as ms-swift does)."""

    def __init__(self, score: ScoreFn, log: Callable[[dict], None], has_val_data: bool):
        self.score = score
        self.log = log
        self.has_val_data = has_val_data

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not control.should_evaluate:
            return
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores = self.score(model, state.global_step)
        except Exception as err:  # noqa: BLE001 - as ms-swift: a failed benchmark run does not end the training
            logger.warning(f'EvalScope evaluation at step {state.global_step} failed: {type(err).__name__}: {err}')
            scores = {}
        finally:
            model.train(was_training)
        if scores:
            self.log({f'test_{name}': value for name, value in scores.items()})
        if not self.has_val_data:
            control.should_evaluate = False
