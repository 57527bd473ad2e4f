"""Reward functions by name, for ``--reward_funcs`` (users register theirs from ``--external_plugins`` files).

A registered reward is either a function, used as is, or a class whose ``__init__`` takes its settings as keyword
arguments (the ``--cosine_max_len`` style flags) and whose instances are called like a function. Either way the
result follows trl's ``GRPOTrainer`` convention, ``reward(prompts, completions, **kwargs) -> list[float | None]``,
so the trainer takes it unchanged.
"""
import inspect
from typing import Callable

from ...utils import SwiftError, get_logger

logger = get_logger()

REWARD_FUNCS: dict[str, Callable] = {}


def register_reward(name: str) -> Callable:
    """Decorator that makes a function or class available as ``--reward_funcs name``.

    A later registration under the same name wins, so a plugin can replace a built-in reward.
    """
    def decorator(obj: Callable) -> Callable:
        if name in REWARD_FUNCS:
            logger.warning(f'reward function {name!r} is registered again; the new one replaces the old one')
        if not inspect.isclass(obj):
            obj.__name__ = name  # trl logs ``rewards/<__name__>/mean``
        REWARD_FUNCS[name] = obj
        return obj
    return decorator


def make_reward(name: str, **settings) -> Callable:
    """The ready-to-call reward ``name``; a class gets only the ``settings`` its ``__init__`` accepts."""
    if name not in REWARD_FUNCS:
        known = ', '.join(sorted(REWARD_FUNCS))
        raise SwiftError(f'unknown reward function {name!r}; known: {known} (add your own with --external_plugins)')
    obj = REWARD_FUNCS[name]
    if not inspect.isclass(obj):
        return obj
    reward = obj(**_accepted_settings(obj, settings))
    reward.__name__ = name  # an instance would otherwise be logged under its class name
    return reward


def get_reward_funcs(names: list[str], **settings) -> list[Callable]:
    """The rewards for ``--reward_funcs names``, each built from the settings it takes; the rest are ignored."""
    return [make_reward(name, **settings) for name in names]


def _accepted_settings(cls: type, settings: dict) -> dict:
    """The pipeline passes every reward flag to every reward; each keeps its own (all of them if it takes **kwargs)."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(settings)
    names = {p.name for p in params}
    return {key: value for key, value in settings.items() if key in names}
