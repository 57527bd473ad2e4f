"""``swift <command> [config.yaml|config.json] [flags]``: map a command to its pipeline, reading flags from a config
file first, relaunching under torchrun for NPROC_PER_NODE or NNODES."""
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import warnings

import yaml

from ..utils import SwiftError, env, get_logger
from ..utils.process import die_with_parent

logger = get_logger()

COMMANDS = {
    'pt': 'swift.pipelines.train:pt_main',
    'sft': 'swift.pipelines.train:sft_main',
    'rlhf': 'swift.pipelines.rlhf:rlhf_main',
    'infer': 'swift.pipelines.infer:infer_main',
    'deploy': 'swift.pipelines.deploy:deploy_main',
    'app': 'swift.pipelines.app:app_main',
    'export': 'swift.pipelines.export:export_main',
    'merge-lora': 'swift.pipelines.export:merge_lora_main',
    'rollout': 'swift.pipelines.rollout:rollout_main',
    'eval': 'swift.pipelines.eval:eval_main',
    'sample': 'swift.pipelines.sample:sample_main',
    'web-ui': 'swift.pipelines.web_ui:web_ui_main',
}
# Commands that train, and so may run as several processes.
DISTRIBUTED = {'pt', 'sft', 'rlhf'}
CONFIG_SUFFIXES = ('.yaml', '.yml', '.json')

USAGE = f"""usage: swift <command> [config.yaml|config.json] [--flag value ...]

commands: {', '.join(COMMANDS)}
run 'swift <command> --help' for the flags of one command.
"""


def read_config_file(path: str) -> dict:
    """The mapping a YAML or JSON config file holds; any problem is one SwiftError line naming the file."""
    try:
        with open(path, encoding='utf-8') as f:
            config = json.load(f) if path.endswith('.json') else yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as err:
        raise SwiftError(f'config file {path}: {getattr(err, "strerror", None) or err}') from None
    except json.JSONDecodeError as err:
        raise SwiftError(f'config file {path}:{err.lineno}: invalid JSON: {err.msg}') from None
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f':{mark.line + 1}' if mark else ''
        raise SwiftError(f'config file {path}{where}: invalid YAML: {getattr(err, "problem", None) or err}') from None
    if not isinstance(config, dict):
        raise SwiftError(f'config file {path} must be a mapping of flag names to values, not '
                         f'{type(config).__name__}')
    return config


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def config_argv(config: dict) -> list[str]:
    """ms-swift's reading of a config file: ``key: value`` is ``--key value``, a list gives several values, a
    mapping is one JSON value; a null leaves the flag at its default."""
    argv = []
    for key, value in config.items():
        if value is not None:
            argv += [f'--{key}', *map(_flag_value, value if isinstance(value, list) else [value])]
    return argv


def _set_env(path: str, variables) -> None:
    """The config file's ``ENV`` mapping: variables the environment does not already set."""
    if not isinstance(variables, dict):
        raise SwiftError(f'config file {path}: ENV must be a mapping of variable names to values')
    for name, value in variables.items():
        if os.environ.setdefault(name, str(value)) != str(value):
            logger.warning(f'{name} is already set in the environment: using {os.environ[name]!r}, not {value!r}')


def expand_config_file(argv: list[str]) -> list[str]:
    """``[config.yaml, *flags]`` as ``[*file flags, *flags]`` (the later flags win); other argv unchanged."""
    if not argv or not argv[0].endswith(CONFIG_SUFFIXES):
        return argv
    config = read_config_file(argv[0])
    if 'ENV' in config:
        _set_env(argv[0], config.pop('ENV') or {})
    return config_argv(config) + argv[1:]


def _torchrun(command: str, argv: list[str], nproc: int) -> int:
    settings = env.torchrun_settings()
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           f"--nnodes={settings['nnodes']}", f"--node_rank={settings['node_rank']}",
           f"--master_addr={settings['master_addr']}", f"--master_port={settings['master_port']}",
           '-m', 'swift.cli.main', command, *argv]
    # SIGTERM lets torchrun stop its workers when the launcher is killed; they also die with torchrun itself.
    return subprocess.call(cmd, preexec_fn=lambda: die_with_parent(signal.SIGTERM))


def _fail(command: str, err: SwiftError) -> int:
    print(f'swift {command}: error: {err}', file=sys.stderr)
    return 2


def run_command(command: str, argv: list[str]) -> int:
    from ..arguments.parser import program  # imports transformers: not needed for usage or the torchrun launcher
    module_name, func_name = COMMANDS[command].split(':')
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        with program(f'swift {command}'):
            func(argv)
    except SwiftError as err:
        return _fail(command, err)
    return 0


def cli_main(argv: list[str] | None = None) -> int:
    # peft still calls this transformers 5 alias on every step; the warning tells users nothing they can act on.
    warnings.filterwarnings('ignore', message='`is_gradient_checkpointing` is deprecated')
    # peft imports bitsandbytes for every LoRA when it is installed; on a CPU with AVX512-BF16 its import tries to
    # fetch an optional 4-bit kernel from the hub and warns when it cannot. Its own fallback serves QLoRA.
    logging.getLogger('bitsandbytes.backends.cpu.ops').setLevel(logging.ERROR)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return 0
    command = argv[0].replace('_', '-')  # ms-swift accepts merge_lora for merge-lora
    if command not in COMMANDS:
        print(f"swift: error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        rest = expand_config_file(argv[1:])
    except SwiftError as err:
        return _fail(command, err)
    if env.is_distributed_worker():
        die_with_parent()
    elif command in DISTRIBUTED and env.wants_torchrun():
        # As ms-swift: several processes on this node, or one node of several (each node launches its own torchrun).
        return _torchrun(command, rest, env.nproc_per_node() or 1)
    return run_command(command, rest)


if __name__ == '__main__':
    sys.exit(cli_main())
