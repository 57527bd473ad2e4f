"""CPO (Xu et al. 2024): DPO's sigmoid loss on the policy's own log-probabilities, with no reference model, plus
--cpo_alpha times the NLL of the chosen answer:

    loss = -log sigmoid(beta * (logp_chosen - logp_rejected)) + cpo_alpha * nll_chosen
"""
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import torch.nn.functional as F

from .base import AlignmentArguments, Algorithm
from .preference import AnswerLogps, PreferenceLoss, make_preference_trainer



@dataclass
class CPOArguments(AlignmentArguments):
    cpo_alpha: Optional[float] = field(
        default=None, metadata={'help': 'CPO/SimPO: weight of the NLL of the chosen answer. Default 1 for CPO, '
                                        '0 for SimPO.'})


def cpo_loss(logps: AnswerLogps, beta: float, cpo_alpha: float) -> PreferenceLoss:
    loss = -F.logsigmoid(beta * (logps.chosen - logps.rejected)) - cpo_alpha * logps.chosen_mean
    return PreferenceLoss(loss, beta * logps.chosen, beta * logps.rejected)


def make_trainer(training, settings: CPOArguments, **kwargs):
    return make_preference_trainer(partial(cpo_loss, beta=settings.beta, cpo_alpha=settings.cpo_alpha), training,
                                   **kwargs)


CPO = Algorithm(rows='pair', encoding='pair', make_trainer=make_trainer, arguments=CPOArguments, needs=('template',),
                defaults={'cpo_alpha': 1.0})  # CPO's paper weights the NLL 1
