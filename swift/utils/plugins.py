"""``--external_plugins``: users' python files, imported before a command looks anything up, so that what they
register (reward functions, models, templates, ...) is there by name."""
import importlib.util
import os
import re
import sys

from .errors import SwiftError


def import_plugins(paths: list[str]) -> None:
    """Import each file once (a second call with the same file does nothing: its registrations stand)."""
    for path in paths:
        _import_file(path)


def _import_file(path: str) -> None:
    if not os.path.isfile(path):
        raise SwiftError(f'external plugin file not found: {path}')
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = 'swift_plugin_' + re.sub(r'\W', '_', stem)
    loaded = sys.modules.get(module_name)
    if loaded is not None and os.path.samefile(getattr(loaded, '__file__', '') or path, path):
        return
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
