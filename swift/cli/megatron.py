"""``megatron pt|sft|rlhf|export``: ms-swift's Megatron-SWIFT commands (TP/PP/CP/EP on megatron-core).

Not built yet (docs/megatron.md holds the plan). The command exists so that ms-swift's scripts stop at once with the
reason, in one line and exit status 2, instead of 'command not found': on a machine without CUDA, because
megatron-core runs on CUDA GPUs only; elsewhere, because megatron-core is missing or this build has no Megatron
trainer yet. ``swift sft``/``swift rlhf`` with ``NPROC_PER_NODE`` and ``--deepspeed`` train the same models.
"""
import importlib.util
import sys

COMMANDS = ('pt', 'sft', 'rlhf', 'export')
USAGE = f"""usage: megatron <command> [config.yaml] [--flag value ...]

commands: {', '.join(COMMANDS)} (Megatron-SWIFT: tensor, pipeline, context and expert parallelism on megatron-core)
not built yet in this build: see docs/megatron.md for the plan and what runs today
"""
NOT_BUILT = ('this build has no Megatron trainer yet (docs/megatron.md); train with swift {command} '
             '(NPROC_PER_NODE=N, --deepspeed zero2|zero3)')


def refusal(command: str, cuda: bool, has_megatron_core: bool) -> str:
    """The one line ``megatron <command>`` stops with on this machine."""
    if not cuda:
        return (f'megatron {command}: Megatron-SWIFT needs CUDA GPUs (megatron-core has no CPU path) and this '
                f'machine has none (torch.cuda.is_available() is False); use swift {command}')
    if not has_megatron_core:
        return (f'megatron {command}: megatron-core is not installed (pip install megatron-core); and '
                + NOT_BUILT.format(command=command))
    return f'megatron {command}: ' + NOT_BUILT.format(command=command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE, end='')
        return 0 if argv else 2
    command = argv[0]
    if command not in COMMANDS:
        print(f"megatron: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    import torch
    has_core = importlib.util.find_spec('megatron') is not None and importlib.util.find_spec('megatron.core') is not None
    print(refusal(command, torch.cuda.is_available(), has_core), file=sys.stderr)
    return 2


def cli_main() -> None:
    sys.exit(main())


if __name__ == '__main__':
    cli_main()
