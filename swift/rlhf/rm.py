"""Reward modelling on trl's RewardTrainer: a one-output sequence-classification head on the causal LM, trained
with the pairwise loss -log sigmoid(r_chosen - r_rejected), plus --center_rewards_coefficient * mean(r)^2.

Rows arrive as full sequences (chosen_ids, rejected_ids) encoded by our template. The checkpoint loads with
--task_type seq_cls (recorded in args.json), so ``swift infer`` scores with it and GRPO/PPO take it as a reward model.
"""
import trl

from ..trainers import SwiftTrainerMixin
from .base import AlignmentSettings, Algorithm, keep_trainable_float32, trl_config


class RewardTrainer(SwiftTrainerMixin, trl.RewardTrainer):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keep_trainable_float32(self.model)


def make_trainer(args, settings: AlignmentSettings, **kwargs) -> RewardTrainer:
    config = trl_config(trl.RewardConfig, args, center_rewards_coefficient=settings.center_rewards_coefficient,
                        max_length=None)
    return RewardTrainer(args=config, **kwargs)


RM = Algorithm(rows='pair', encoding='full_pair', uses_reference=False, make_trainer=make_trainer)
