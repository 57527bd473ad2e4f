"""SimPO (Meng et al. 2024): length-normalised log-probabilities as the reward, a target margin --simpo_gamma, no
reference model. --cpo_alpha > 0 adds the NLL of the chosen answer (CPO-SimPO):

    loss = -log sigmoid(beta * (mean_logp_chosen - mean_logp_rejected) - gamma) + cpo_alpha * nll_chosen
"""
from dataclasses import dataclass, field
from functools import partial

import torch.nn.functional as F

from .base import Algorithm
from .cpo import CPOArguments
from .preference import AnswerLogps, PreferenceLoss, make_preference_trainer



@dataclass
class SimPOArguments(CPOArguments):
    simpo_gamma: float = field(default=1.0, metadata={'help': 'SimPO: target reward margin.'})


def simpo_loss(logps: AnswerLogps, beta: float, gamma: float, cpo_alpha: float) -> PreferenceLoss:
    chosen, rejected = beta * logps.chosen_mean, beta * logps.rejected_mean
    loss = -F.logsigmoid(chosen - rejected - gamma) - cpo_alpha * logps.chosen_mean
    return PreferenceLoss(loss, chosen, rejected)


def make_trainer(training, settings: SimPOArguments, **kwargs):
    loss_fn = partial(simpo_loss, beta=settings.beta, gamma=settings.simpo_gamma, cpo_alpha=settings.cpo_alpha)
    return make_preference_trainer(loss_fn, training, **kwargs)


# pure SimPO has no SFT term
SIMPO = Algorithm(rows='pair', encoding='pair', make_trainer=make_trainer, arguments=SimPOArguments, needs=('template',),
                  defaults={'beta': 2.0, 'cpo_alpha': 0.0})
