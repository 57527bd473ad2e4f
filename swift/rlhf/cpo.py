"""CPO (Xu et al. 2024): DPO's sigmoid loss on the policy's own log-probabilities, with no reference model, plus
--cpo_alpha times the NLL of the chosen answer:

    loss = -log sigmoid(beta * (logp_chosen - logp_rejected)) + cpo_alpha * nll_chosen
"""
from functools import partial

import torch.nn.functional as F

from .base import AlignmentSettings, Algorithm
from .preference import AnswerLogps, PreferenceLoss, make_preference_trainer


def cpo_loss(logps: AnswerLogps, beta: float, cpo_alpha: float) -> PreferenceLoss:
    loss = -F.logsigmoid(beta * (logps.chosen - logps.rejected)) - cpo_alpha * logps.chosen_mean
    return PreferenceLoss(loss, beta * logps.chosen, beta * logps.rejected)


def make_trainer(args, settings: AlignmentSettings, **kwargs):
    return make_preference_trainer(partial(cpo_loss, beta=settings.beta, cpo_alpha=settings.cpo_alpha), args, **kwargs)


CPO = Algorithm(rows='pair', encoding='pair', uses_reference=False, make_trainer=make_trainer)
