"""Reward modelling on trl's RewardTrainer: a one-output sequence-classification head on the causal LM, trained
with the pairwise loss -log sigmoid(r_chosen - r_rejected), plus --center_rewards_coefficient * mean(r)^2.

Rows arrive as full sequences (chosen_ids, rejected_ids) encoded by our template. The checkpoint loads with
--task_type seq_cls (recorded in args.json), so ``swift infer`` scores with it and GRPO/PPO take it as a reward model.
"""
from dataclasses import dataclass, field
from typing import Optional

import trl

from ..trainers import SwiftTrainerMixin
from .base import AlignmentArguments, Algorithm, keep_trainable_float32, trl_config



@dataclass
class RMArguments(AlignmentArguments):
    center_rewards_coefficient: Optional[float] = field(
        default=None, metadata={'help': 'RM: pull the mean reward towards 0 with this weight.'})


class RewardTrainer(SwiftTrainerMixin, trl.RewardTrainer):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keep_trainable_float32(self.model)


def make_trainer(training, settings: RMArguments, **kwargs) -> RewardTrainer:
    config = trl_config(trl.RewardConfig, training, center_rewards_coefficient=settings.center_rewards_coefficient,
                        max_length=None)
    return RewardTrainer(args=config, **kwargs)


# A reward model is a one-output scoring head (recorded in args.json, so infer and GRPO/PPO load it as one).
RM = Algorithm(rows='pair', encoding='full_pair', make_trainer=make_trainer, arguments=RMArguments,
               defaults={'task_type': 'seq_cls', 'num_labels': 1})
