"""ORPO (Hong et al. 2024): the SFT loss on the chosen answer plus --beta times an odds-ratio penalty, with no
reference model. With p the mean per-token probability of an answer, odds(p) = p / (1 - p):

    loss = nll_chosen - beta * log sigmoid(log odds(p_chosen) - log odds(p_rejected))
"""
from functools import partial

import torch
import torch.nn.functional as F

from .base import AlignmentArguments, Algorithm
from .preference import AnswerLogps, PreferenceLoss, make_preference_trainer


def orpo_loss(logps: AnswerLogps, beta: float) -> PreferenceLoss:
    chosen, rejected = logps.chosen_mean, logps.rejected_mean
    # log odds(p) = log p - log(1 - p), with log p the mean log-probability
    log_odds = (chosen - rejected) - (torch.log1p(-chosen.exp()) - torch.log1p(-rejected.exp()))
    loss = -chosen - beta * F.logsigmoid(log_odds)
    return PreferenceLoss(loss, beta * chosen, beta * rejected)


def make_trainer(training, settings: AlignmentArguments, **kwargs):
    return make_preference_trainer(partial(orpo_loss, beta=settings.beta), training, **kwargs)


ORPO = Algorithm(rows='pair', encoding='pair', make_trainer=make_trainer, needs=('template',))
