"""Arguments of ``swift rlhf``: everything ``swift sft`` takes, ``--rlhf_type``, and the flag group of every algorithm
in ``ALGORITHMS`` (each declared in the algorithm's own file), composed into one class.

The class is built from the registry as it stands when a command parses, so an algorithm added in one file and one
registry line brings its flags along.
"""
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Literal

from ..arguments import TrainArguments
from ..utils import SwiftError
from . import ALGORITHMS
from .base import DEFAULT_BETA, AlignmentArguments, Algorithm


# The encodings that swift export --to_cached_dataset --template_mode rlhf|kto writes (pipelines/cached_dataset.py).
CACHED_ENCODINGS = ('pair', 'completion')


def rlhf_arguments() -> type:
    """The arguments class of ``swift rlhf`` for the algorithms registered now."""
    return _compose(tuple(ALGORITHMS))


@cache
def _compose(names: tuple[str, ...]) -> type:
    groups = _outermost({ALGORITHMS[name].arguments: None for name in names})

    @dataclass
    class RLHFArguments(*groups, TrainArguments):
        rlhf_type: Literal[names] = field(default=names[0], metadata={'help': 'Alignment algorithm.'})

        def __post_init__(self):
            algorithm = ALGORITHMS[self.rlhf_type]
            _apply_defaults(self, algorithm)
            TrainArguments.__post_init__(self)
            _check(self, algorithm, groups)

    return RLHFArguments


def _outermost(classes: dict[type, None]) -> list[type]:
    """The groups no other group extends (SimPO's extends CPO's): every field once, bases in a consistent order."""
    return [cls for cls in classes if not any(other is not cls and issubclass(other, cls) for other in classes)]


def _apply_defaults(args, algorithm: Algorithm) -> None:
    """Flags left unset take the algorithm's own default (e.g. --beta 2.0 for SimPO, a scoring head for RM)."""
    for name, value in algorithm.defaults.items():
        if getattr(args, name) in (None, _default(type(args), name)):
            setattr(args, name, value)
    if args.beta is None:
        args.beta = DEFAULT_BETA


def _check(args, algorithm: Algorithm, groups: list[type]) -> None:
    if args.train_type == 'longlora' or args.init_weights == 'lora-ga':
        # S²-Attn needs batches padded to a multiple of 4, which trl's collators do not make; LoRA-GA estimates its
        # gradients on sft rows.
        raise SwiftError(f'--train_type {args.train_type} --init_weights {args.init_weights}: longlora and lora-ga '
                         'train with swift sft and swift pt, not swift rlhf')
    if (args.cached_dataset or args.cached_val_dataset) and algorithm.encoding not in CACHED_ENCODINGS:
        raise SwiftError(f'--cached_dataset: --rlhf_type {args.rlhf_type} encodes its --dataset itself; cached rows '
                         '(swift export --template_mode rlhf|kto) train dpo, orpo, cpo, simpo and kto')
    if args.loss_weights and len(args.loss_weights) != len(args.loss_type):
        raise SwiftError(f'--loss_weights has {len(args.loss_weights)} values for {len(args.loss_type)} '
                         '--loss_type values')
    if args.ref_model and 'ref_model' not in algorithm.needs:
        users = [name for name, other in ALGORITHMS.items() if 'ref_model' in other.needs]
        raise SwiftError(f"--ref_model: {args.rlhf_type} uses no reference model (only {', '.join(users)} do)")
    _refuse_other_algorithms_flags(args, algorithm, groups)
    if algorithm.check:
        algorithm.check(args)


def _refuse_other_algorithms_flags(args, algorithm: Algorithm, groups: list[type]) -> None:
    """A flag that only other algorithms read, given a value, would be silently ignored: say so instead."""
    own = {f.name for f in fields(algorithm.arguments)} | {f.name for f in fields(AlignmentArguments)}
    for group in groups:
        for flag in fields(group):
            if flag.name not in own and getattr(args, flag.name) != _default(type(args), flag.name):
                users = [name for name, other in ALGORITHMS.items()
                         if flag.name in {f.name for f in fields(other.arguments)}]
                raise SwiftError(f"--{flag.name} is read by --rlhf_type {' and '.join(users)} only, not by "
                                 f'{args.rlhf_type}')


def _default(cls: type, name: str):
    flag = cls.__dataclass_fields__[name]
    return flag.default_factory() if flag.default is MISSING and flag.default_factory is not MISSING else flag.default


# The class for the algorithms swift ships, under the Python API's name (``from swift.llm import RLHFArguments``).
RLHFArguments = rlhf_arguments()
