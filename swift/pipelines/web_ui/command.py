"""The command a page runs: the argv built from its fields, the line a user would type, and its validation by the
command's own argument parser (so that the page can only start swift's own commands with flags that parse)."""
import importlib
import shlex

from ...arguments import DeployArguments, ExportArguments, InferArguments, TrainArguments, parse_args
from ...arguments.parser import program
from ...rlhf.arguments import rlhf_arguments
from ...utils import SwiftError

FIXED = {'sft': TrainArguments, 'pt': TrainArguments, 'infer': InferArguments, 'deploy': DeployArguments,
         'export': ExportArguments}


def argument_class(command: str) -> type:
    """The arguments dataclass that ``swift <command>`` parses its flags into."""
    if command in FIXED:
        return FIXED[command]
    if command == 'rlhf':
        return rlhf_arguments()
    if command == 'eval':  # swift eval ships in its own module; a build without it says so instead of failing
        try:
            return importlib.import_module('swift.arguments.eval_args').EvalArguments
        except (ImportError, AttributeError):
            raise SwiftError('swift eval is not available in this version of swift') from None
    raise SwiftError(f'the web UI cannot run swift {command}')


def field_flags(values: dict[str, str]) -> list[str]:
    """``--flag value`` for each filled field, in the page's order; a field left empty keeps the default. A value
    with spaces is several values (``--dataset a.jsonl b.jsonl``), as the shell would split it."""
    flags = []
    for flag, value in values.items():
        value = '' if value is None else str(value).strip()
        if value:
            flags += [f'--{flag}', *shlex.split(value)]
    return flags


def build_flags(values: dict[str, str], other: str) -> list[str]:
    """The page's fields then its free "other flags" text, split as a shell would split it."""
    try:
        extra = shlex.split(other or '')
    except ValueError as err:  # an unclosed quote
        raise SwiftError(f'other flags: {err}') from None
    return field_flags(values) + extra


def shown_command(command: str, flags: list[str]) -> str:
    """The line a user would type in a shell for the same run."""
    return shlex.join(['swift', command, *flags])


def validate(command: str, flags: list[str]):
    """The parsed arguments of ``swift <command> <flags>``; a bad flag is the one-line SwiftError the command
    itself would print."""
    with program(f'swift {command}'):
        try:
            return parse_args(argument_class(command), flags)
        except SwiftError as err:
            raise SwiftError(f'swift {command}: error: {err}') from None
