"""Reward functions for GRPO, chosen by name with ``--reward_funcs``; users add theirs with ``--external_plugins``.

Importing the modules below registers the built-in rewards. See docs/rewards.md.
"""
from .accuracy import accuracy_reward
from .cosine import Cosine
from .format import format_reward
from .registry import REWARD_FUNCS, get_reward_funcs, make_reward, register_reward
from .repetition import Repetition
from .soft_overlong import SoftOverlong

__all__ = ['REWARD_FUNCS', 'register_reward', 'make_reward', 'get_reward_funcs', 
           'accuracy_reward', 'Cosine', 'format_reward', 'Repetition', 'SoftOverlong']
