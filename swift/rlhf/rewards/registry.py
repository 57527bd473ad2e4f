"""Reward functions by name, for ``--reward_funcs``, and the loader of users' plugin files.

A registered reward is either a function, used as is, or a class whose ``__init__`` takes its settings as keyword
arguments (the ``--cosine_max_len`` style flags) and whose instances are called like a function. Either way the
result follows trl's ``GRPOTrainer`` convention, ``reward(prompts, completions, **kwargs) -> list[float | None]``,
so the trainer takes it unchanged.
"""
import importlib.util
import inspect
import os
import re
import sys
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


def load_external_plugins(paths: list[str]) -> None:
    """Import users' python files so that their ``@register_reward(...)`` lines run before the names are looked up."""
    for path in paths:
        _import_file(path)


def _import_file(path: str) -> None:
    if not os.path.isfile(path):
        raise SwiftError(f'external plugin file not found: {path}')
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = 'swift_plugin_' + re.sub(r'\W', '_', stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise SwiftError(f'external plugin is not a python file: {path}')
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as a normal import would, so the plugin's classes can be pickled and introspected.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        message = ' '.join(str(error).split())  # SwiftError messages are one line
        raise SwiftError(f'external plugin {path} failed to import: {type(error).__name__}: {message}') from error
