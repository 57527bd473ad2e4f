"""Alignment algorithms, one file each. ``ALGORITHMS`` gives the ``--rlhf_type`` choices."""
from .base import AlignmentArguments, Algorithm, SamplingArguments
from .cpo import CPO
from .dpo import DPO
from .gkd import GKD
from .grpo import GRPO
from .kto import KTO
from .orpo import ORPO
from .ppo import PPO
from .rm import RM
from .simpo import SIMPO

ALGORITHMS: dict[str, Algorithm] = {'dpo': DPO, 'orpo': ORPO, 'cpo': CPO, 'simpo': SIMPO, 'kto': KTO, 'rm': RM,
                                 'grpo': GRPO, 'gkd': GKD, 'ppo': PPO}
