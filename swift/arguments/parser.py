"""argv to an arguments dataclass. Unknown flags and bad values become one line naming the flag: exit 2.
``--help`` names the command and lists the flags in one group per arguments dataclass."""
import argparse
import copy
import dataclasses
import difflib
import inspect
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Iterator, Sequence, TypeVar, get_type_hints

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from ..utils import SwiftError, get_logger
from .aliases import rewrite_aliases
from .unsupported import ACTS_IN, UNSUPPORTED

T = TypeVar('T')
logger = get_logger()

# The command line being parsed, for --help's usage line; cli/main.py sets it to 'swift <command>'.
_PROGRAM = ContextVar('swift_program', default='swift')

# --help's group of each arguments dataclass, in the order the groups are shown. A field is listed under the most
# derived class that declares it (where its help text comes from); classes not named here get their own name.
GROUP_TITLES = {
    'ModelArguments': 'model', 'DataArguments': 'data', 'TemplateArguments': 'template',
    'GenerationArguments': 'generation', 'BaseArguments': 'checkpoint and seed', 'CommandArguments': 'command line',
    'TunerArguments': 'tuner',
    'TrainArguments': 'training', 'Seq2SeqTrainingArguments': 'training', 'TrainingArguments': 'training',
    'RLHFArguments': 'rlhf', 'AlignmentArguments': 'rlhf', 'SamplingArguments': 'rlhf sampling',
    'RewardArguments': 'GRPO rewards', 'InferArguments': 'inference', 'VllmArguments': 'vLLM',
    'VllmEngineArguments': 'vLLM', 'SglangArguments': 'SGLang',
    'LmdeployArguments': 'LMDeploy', 'DeployArguments': 'deploy (HTTP server)', 'AppArguments': 'app (web page)',
    'ExportArguments': 'export', 'RolloutArguments': 'rollout (vLLM server)',
}
DESCRIPTION = ('Flags may also come from a YAML or JSON file given first ({prog} config.yaml --flag value): '
               'a mapping of flag names to values; flags on the command line win. Booleans are true or false; a '
               'list flag takes several values.')


@contextmanager
def program(name: str) -> Iterator[None]:
    """Parse inside this block as the command ``name`` (e.g. 'swift sft'): what --help's usage line shows."""
    token = _PROGRAM.set(name)
    try:
        yield
    finally:
        _PROGRAM.reset(token)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag once, as ``--flag_name`` (the parser also accepts ``--flag-name``), with its default."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = [opt for opt in action.option_strings if '-' not in opt.lstrip('-')]
        if not shown:
            return super()._format_action_invocation(action)
        if action.nargs == 0:
            return ', '.join(shown)
        if action.type is string_to_bool:
            return f'{shown[0]} [true|false]'
        return f'{shown[0]} {self._format_args(action, self._get_default_metavar_for_optional(action))}'

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None or action.default == [] else super()._get_help_string(action)


class SwiftArgumentParser(HfArgumentParser):
    """HfArgumentParser that raises SwiftError instead of printing usage and exiting, and groups --help by topic."""

    def __init__(self, dataclass_type):
        prog = _PROGRAM.get()
        # No abbreviations: `--stream` must not silently mean `--streaming`.
        super().__init__([dataclass_type], allow_abbrev=False, prog=prog, usage='%(prog)s [flags]',
                         description=DESCRIPTION.format(prog=prog), formatter_class=_HelpFormatter)

    def error(self, message: str):
        raise SwiftError(message.replace('argument ', '', 1) if message.startswith('argument ') else message)

    def known_flags(self) -> list[str]:
        return [opt for action in self._actions for opt in action.option_strings
                if opt.startswith('--') and '-' not in opt[2:]]

    def _add_dataclass_arguments(self, dtype) -> None:
        """Each field in the group of the class that declares it, with a help text (inherited when it has none)."""
        hints = get_type_hints(dtype)
        fields = [f for f in dataclasses.fields(dtype) if f.init]
        titles = {f.name: _group_title(dtype, f.name) for f in fields}
        order = list(dict.fromkeys(GROUP_TITLES.values()))
        ranked = sorted(set(titles.values()), key=lambda t: order.index(t) if t in order else len(order))
        groups = {title: self.add_argument_group(f'{title} flags') for title in ranked}
        for field in fields:
            field = _with_help(dtype, field)
            field.type = hints[field.name]
            self._parse_dataclass_field(groups[titles[field.name]], field)
        _describe_negations(self._actions)


def _group_title(dtype: type, name: str) -> str:
    owner = next(cls for cls in dtype.__mro__ if name in inspect.get_annotations(cls))
    return GROUP_TITLES.get(owner.__name__, owner.__name__.removesuffix('Arguments'))


def _with_help(dtype: type, field: dataclasses.Field) -> dataclasses.Field:
    """``field``, or a copy carrying the help of the field it overrides (a default changed, the meaning kept)."""
    if field.metadata.get('help'):
        return field
    inherited = [base.__dataclass_fields__[field.name].metadata.get('help') for base in dtype.__mro__[1:]
                 if field.name in getattr(base, '__dataclass_fields__', {})]
    field = copy.copy(field)
    field.metadata = MappingProxyType({**field.metadata, 'help': next(filter(None, inherited), None)})
    return field


def _describe_negations(actions: list[argparse.Action]) -> None:
    """HfArgumentParser adds ``--no_<flag>`` for each boolean flag that defaults to true; say what it is."""
    for action in actions:
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0] == f'--no_{action.dest}':
            action.help, action.default = f'Same as --{action.dest} false.', argparse.SUPPRESS


def _unknown_flag_message(remaining: list[str], known: list[str]) -> str:
    flags = [token.split('=')[0] for token in remaining if token.startswith('--')]
    if not flags:
        return f"unexpected value(s): {' '.join(remaining)}"
    flag = flags[0]
    close = difflib.get_close_matches(flag, known, n=3, cutoff=0.6)
    hint = f"; closest valid: {', '.join(close)}" if close else ''
    return f'unknown flag {flag}{hint}'


def _refuse_unsupported(argv: list[str], cls: type) -> None:
    """An ms-swift flag this build cannot act on stops here with its reason, rather than as an unknown flag; a
    flag only some commands act on (ACTS_IN) stops in the others."""
    for token in argv:
        name = token[2:].split('=')[0].replace('-', '_') if token.startswith('--') else None
        if name in UNSUPPORTED and not any(c.__name__ in ACTS_IN.get(name, ()) for c in cls.__mro__):
            raise SwiftError(f'--{name}: {UNSUPPORTED[name]}')


def parse_args(cls: type[T], argv: Sequence[str]) -> T:
    _refuse_unsupported(argv, cls)  # under the name the user gave, then under the one an alias stands for
    argv = rewrite_aliases(list(argv))
    _refuse_unsupported(argv, cls)
    parser = SwiftArgumentParser(cls)
    try:
        args, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except (ValueError, TypeError) as err:  # raised by transformers' own __post_init__ checks
        raise SwiftError(str(err).strip().splitlines()[0]) from None
    if remaining and getattr(args, 'ignore_args_error', False):
        logger.warning(f'--ignore_args_error: ignoring {_unknown_flag_message(remaining, parser.known_flags())} '
                       f"({' '.join(remaining)})")
    elif remaining:
        raise SwiftError(_unknown_flag_message(remaining, parser.known_flags()))
    return args
