"""ms-swift's ``--fsdp``: the preset ``fsdp2`` or a JSON file holding ``{"fsdp": "<options>", "fsdp_config": {...}}``
(ms-swift's swift/config/fsdp2.json layout), or transformers' option string itself (``full_shard auto_wrap``); a
``--fsdp_config`` (JSON object or file) adds to and overrides the file's ``fsdp_config``. The result is what
transformers' FSDP2 integration (through accelerate) takes."""
import json
import os
from typing import Any

from ..utils import SwiftError

# ms-swift's swift/config/fsdp2.json: FSDP2, fully sharded (ZeRO-3 style), decoder layers wrapped, FSDP's own
# activation checkpointing, each rank saving its own shard.
PRESETS: dict[str, dict[str, Any]] = {
    'fsdp2': {'fsdp': 'full_shard auto_wrap',
              'fsdp_config': {'fsdp_version': 2, 'reshard_after_forward': True,
                              'auto_wrap_policy': 'TRANSFORMER_BASED_WRAP', 'cpu_ram_efficient_loading': True,
                              'state_dict_type': 'SHARDED_STATE_DICT', 'activation_checkpointing': True}},
}
OPTIONS = {'full_shard', 'shard_grad_op', 'offload', 'auto_wrap'}


def _read_json(flag: str, path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            value = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise SwiftError(f'{flag} {path}: {getattr(err, "strerror", None) or err}') from None
    if not isinstance(value, dict):
        raise SwiftError(f'{flag} {path}: the file must hold a JSON object')
    return value


def _config_flag(value) -> dict:
    """--fsdp_config as a dict: a JSON object, a JSON file, or nothing."""
    if value is None or isinstance(value, dict):
        return dict(value or {})
    if os.path.isfile(value):
        return _read_json('--fsdp_config', value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise SwiftError(f'--fsdp_config {value}: give a JSON object or a JSON file') from None
    if not isinstance(parsed, dict):
        raise SwiftError(f'--fsdp_config {value}: give a JSON object or a JSON file')
    return parsed


def fsdp_settings(fsdp: str, fsdp_config) -> tuple[str, dict]:
    """``(options, fsdp_config)`` for transformers from ``--fsdp`` and ``--fsdp_config``."""
    if fsdp in PRESETS:
        preset = json.loads(json.dumps(PRESETS[fsdp]))  # a copy: transformers edits the dict it is given
    elif os.path.isfile(fsdp):
        preset = _read_json('--fsdp', fsdp)
    elif fsdp.split() and set(fsdp.split()) <= OPTIONS:
        preset = {'fsdp': fsdp}
    else:
        raise SwiftError(f"--fsdp {fsdp}: give {', '.join(PRESETS)}, a JSON file like ms-swift's "
                         f"swift/config/fsdp2.json, or options among {', '.join(sorted(OPTIONS))}")
    options = preset.get('fsdp', 'full_shard auto_wrap')
    if not set(str(options).split()) <= OPTIONS:
        raise SwiftError(f"--fsdp {fsdp}: unknown option in \"fsdp\": {options!r} (options: "
                         f"{', '.join(sorted(OPTIONS))})")
    config = {**preset.get('fsdp_config', {}), **_config_flag(fsdp_config)}
    version = int(config.get('fsdp_version', config.get('version', 2)))
    if version != 2:
        raise SwiftError(f'--fsdp {fsdp}: fsdp_version {version}: only FSDP2 is built (transformers deprecates '
                         'FSDP1)')
    return options, config
