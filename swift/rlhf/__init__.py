"""Alignment algorithms, one file each. ``ALGORITHMS`` gives the ``--rlhf_type`` choices."""
from .base import AlignmentSettings, Algorithm
from .cpo import CPO
from .dpo import DPO
from .grpo import GRPO
from .kto import KTO
from .orpo import ORPO
from .rm import RM
from .simpo import SIMPO

ALGORITHMS: dict[str, Algorithm] = {'dpo': DPO, 'orpo': ORPO, 'cpo': CPO, 'simpo': SIMPO, 'kto': KTO, 'rm': RM,
                                 'grpo': GRPO}
