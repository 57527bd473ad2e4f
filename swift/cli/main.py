"""``swift <command> [flags]``: map a command to its pipeline, relaunching under torchrun for NPROC_PER_NODE."""
import importlib
import subprocess
import sys
import warnings

from ..utils import SwiftError, env

COMMANDS = {
    'pt': 'swift.pipelines.train:pt_main',
    'sft': 'swift.pipelines.train:sft_main',
    'rlhf': 'swift.pipelines.rlhf:rlhf_main',
    'infer': 'swift.pipelines.infer:infer_main',
    'deploy': 'swift.pipelines.deploy:deploy_main',
    'app': 'swift.pipelines.app:app_main',
    'export': 'swift.pipelines.export:export_main',
    'rollout': 'swift.pipelines.rollout:rollout_main',
}
# Commands that train, and so may run as several processes.
DISTRIBUTED = {'pt', 'sft', 'rlhf'}

USAGE = f"""usage: swift <command> [--flag value ...]

commands: {', '.join(COMMANDS)}
run 'swift <command> --help' for the flags of one command.
"""


def _torchrun(command: str, argv: list[str], nproc: int) -> int:
    settings = env.torchrun_settings()
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
           f"--nnodes={settings['nnodes']}", f"--node_rank={settings['node_rank']}",
           f"--master_addr={settings['master_addr']}", f"--master_port={settings['master_port']}",
           '-m', 'swift.cli.main', command, *argv]
    return subprocess.call(cmd)


def run_command(command: str, argv: list[str]) -> int:
    module_name, func_name = COMMANDS[command].split(':')
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        func(argv)
    except SwiftError as err:
        print(f'swift {command}: error: {err}', file=sys.stderr)
        return 2
    return 0


def cli_main(argv: list[str] | None = None) -> int:
    # peft still calls this transformers 5 alias on every step; the warning tells users nothing they can act on.
    warnings.filterwarnings('ignore', message='`is_gradient_checkpointing` is deprecated')
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"swift: error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    nproc = env.nproc_per_node()
    if command in DISTRIBUTED and nproc and nproc > 1 and not env.is_distributed_worker():
        return _torchrun(command, rest, nproc)
    return run_command(command, rest)


if __name__ == '__main__':
    sys.exit(cli_main())
