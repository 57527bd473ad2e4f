"""Issue 13: every flag of ms-swift's Command-line-parameters page parses, and either acts or refuses in one line.

tests/data/ms_swift_flags.json is the page's flag list at one ms-swift commit (scripts/ms_swift_flags.py writes it),
each flag with the commands whose ms-swift arguments class declares it and a valid example value. For each flag and
each of its commands that this build has, ``--flag example`` is parsed in-process with the arguments class the command
parses (as swift/cli/main.py's pipelines do) and the fewest other flags the command needs. A flag named in
swift/arguments/unsupported.py must be refused with one SwiftError line that names it and gives the table's reason;
any other flag must be accepted. A flag whose commands this build lacks (eval, sample, web-ui, megatron) must be in
the table. Parsing only: nothing is loaded or run.

``python tests/arguments/test_ms_swift_flags.py`` prints each case's outcome today (accepted, unknown flag, bad
value, rejected by a check), for triage.
"""
import dataclasses
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from swift.arguments import (AppArguments, DeployArguments, ExportArguments, InferArguments, RolloutArguments,
                             TrainArguments, parse_args)
from swift.arguments.eval_args import EvalArguments
from swift.arguments.sample_args import SampleArguments
from swift.arguments.unsupported import ACTS_IN, UNSUPPORTED
from swift.arguments.webui_args import WebUIArguments
from swift.utils import SwiftError

DATA = json.loads((Path(__file__).parents[1] / 'data' / 'ms_swift_flags.json').read_text(encoding='utf-8'))
TODO_FILE = Path(__file__).parents[1] / 'data' / 'ms_swift_flags_todo.md'


def _todo() -> set[tuple[str, str]]:
    """(flag, command) pairs that tests/data/ms_swift_flags_todo.md lists as still to act: its section (a), a table
    row per flag (``| `flag` | commands it fails on | ...``) and the paragraph of flags that fail on rollout only."""
    section = TODO_FILE.read_text(encoding='utf-8').split('\n## (a)', 1)[1].split('\n## ', 1)[0]
    pairs = set()
    for line in section.splitlines():
        row = re.match(r'\| `(\w+)` \| ([^|]*)\|', line)
        if row:
            commands = re.findall(r'[a-z]+', row.group(2).split('(')[0])
            pairs |= {(row.group(1), 'sft' if c == 'pt' else c) for c in commands}
        elif line.startswith('`'):
            pairs |= {(name, 'rollout') for name in re.findall(r'`(\w+)`', line)}
    return pairs


TODO = _todo()


def _rlhf_class() -> type:
    """What swift/pipelines/rlhf.py parses with: the class composed from the registered algorithms."""
    try:
        from swift.rlhf.arguments import rlhf_arguments
    except ImportError:  # before the algorithms carried their own flag groups
        from swift.arguments import RLHFArguments
        return RLHFArguments
    return rlhf_arguments()


# ms-swift command -> the arguments class this build parses it with (swift/cli/main.py -> swift/pipelines/*).
CLASSES = {'sft': TrainArguments, 'pt': TrainArguments, 'rlhf': _rlhf_class(), 'infer': InferArguments,
           'deploy': DeployArguments, 'app': AppArguments, 'export': ExportArguments, 'rollout': RolloutArguments,
           'web-ui': WebUIArguments, 'eval': EvalArguments, 'sample': SampleArguments}
# The flags each command needs before it parses at all.
REQUIRED = {'sft': ['--model', 'm', '--dataset', 'd.jsonl'], 'pt': ['--model', 'm', '--dataset', 'd.jsonl'],
            'rlhf': ['--model', 'm', '--dataset', 'd.jsonl'], 'infer': ['--model', 'm'], 'deploy': ['--model', 'm'],
            'app': ['--model', 'm'], 'export': ['--model', 'm'], 'rollout': ['--model', 'm'],
            'web-ui': [], 'eval': ['--model', 'm', '--eval_dataset', 'general_mcq'],
            'sample': ['--model', 'm', '--dataset', 'd.jsonl']}
# A flag of one rlhf algorithm is parsed under it (the json's rlhf_type), with what that algorithm needs.
RLHF_CONTEXT = {
    'grpo': ['--rlhf_type', 'grpo', '--reward_funcs', 'accuracy', '--per_device_train_batch_size', '8',
             '--per_device_eval_batch_size', '8'],
    'gkd': ['--rlhf_type', 'gkd', '--teacher_model', 't'],
    'ppo': ['--rlhf_type', 'ppo', '--reward_model', 'r'],
}
for _name in ('dpo', 'orpo', 'cpo', 'simpo', 'kto', 'rm'):
    RLHF_CONTEXT[_name] = ['--rlhf_type', _name]
# Flags that mean something only beside another one.
COMPANIONS = {
    'merge_lora': ['--adapters', 'ckpt'], 'push_to_hub': ['--hub_model_id', 'user/name'],
    'hub_private_repo': ['--push_to_hub', 'true', '--hub_model_id', 'user/name'],
    'commit_message': ['--push_to_hub', 'true', '--hub_model_id', 'user/name'],
    'lora_ga_batch_size': ['--init_weights', 'lora-ga'], 'lora_ga_iters': ['--init_weights', 'lora-ga'],
    'lora_ga_max_length': ['--init_weights', 'lora-ga'], 'lora_ga_direction': ['--init_weights', 'lora-ga'],
    'lora_ga_scale': ['--init_weights', 'lora-ga'], 'lora_ga_stable_gamma': ['--init_weights', 'lora-ga'],
    'use_galore': ['--tuner_type', 'full'], 'dataloader_prefetch_factor': ['--dataloader_num_workers', '1'],
    'lisa_activated_layers': ['--tuner_type', 'full'], 'lisa_step_interval': ['--tuner_type', 'full'],
    'freeze_parameters': ['--tuner_type', 'full'], 'freeze_parameters_regex': ['--tuner_type', 'full'],
    'freeze_parameters_ratio': ['--tuner_type', 'full'], 'trainable_parameters': ['--tuner_type', 'full'],
    'trainable_parameters_regex': ['--tuner_type', 'full'],
    'reft_layers': ['--tuner_type', 'reft'], 'reft_rank': ['--tuner_type', 'reft'],
    'reft_intervention_type': ['--tuner_type', 'reft'], 'reft_args': ['--tuner_type', 'reft'],
    'adalora_target_r': ['--tuner_type', 'adalora'], 'llamapro_num_new_blocks': ['--tuner_type', 'llamapro'],
    'llamapro_num_groups': ['--tuner_type', 'llamapro'], 'vera_rank': ['--tuner_type', 'vera'],
    'boft_block_size': ['--tuner_type', 'boft'], 'fourier_n_frequency': ['--tuner_type', 'fourierft'],
    'bnb_4bit_quant_type': ['--quant_bits', '4'], 'bnb_4bit_use_double_quant': ['--quant_bits', '4'],
    'bnb_4bit_compute_dtype': ['--quant_bits', '4'], 'bnb_4bit_quant_storage': ['--quant_bits', '4'],
    'quant_method': ['--quant_bits', '4'], 'vllm_mode': ['--use_vllm', 'true'],
    'loss_weights': ['--loss_type', 'sigmoid'], 'eval_use_evalscope': ['--eval_dataset', 'general_mcq'],
    'streaming': ['--max_steps', '10'],
}
# ms-swift 3 spellings the seeds use, beside the page's names.
MS_SWIFT3 = [(['--train_type', 'lora'], ('sft', 'pt', 'rlhf')), (['--infer_backend', 'pt'], ('infer', 'deploy', 'app'))]


def argv_for(flag: dict, command: str) -> list[str]:
    """The command's required flags (less the one under test), ``--flag example``, then the flag's companions (after
    it, so that a command refusing a companion too names the flag under test first)."""
    name = flag['name']
    context = list(REQUIRED[command])
    if command == 'rlhf' and flag.get('rlhf_type'):
        context += RLHF_CONTEXT[flag['rlhf_type']]
    return _without(context, name) + [f'--{name}', *shlex.split(flag['example'])] + _without(
        COMPANIONS.get(name, []), name)


def _without(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``--name`` and its values."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == f'--{name}':
            i += 1
            while i < len(argv) and not argv[i].startswith('--'):
                i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def cases() -> list:
    """One case per flag and distinct (arguments class, argv): pt and sft share TrainArguments."""
    seen, out = {}, []
    for flag in DATA['flags']:
        for command in flag['commands']:
            if command not in CLASSES:
                continue
            argv = argv_for(flag, command)
            key = (flag['name'], CLASSES[command], tuple(argv))
            if key in seen:
                seen[key][1].append(command)
                continue
            seen[key] = (flag, [command], argv)
            out.append(seen[key])
    return out


CASES = cases()
ABSENT = [f for f in DATA['flags'] if not any(c in CLASSES for c in f['commands'])]


def outcome(flag: dict, commands: list[str], argv: list[str]) -> tuple[str, str]:
    """('accepted', '') or (kind of failure, the error line)."""
    try:
        parse_args(CLASSES[commands[0]], argv)
    except SwiftError as err:
        message = str(err)
        if message.startswith('unknown flag'):
            return 'unknown flag', message
        if 'invalid' in message or 'expected' in message:
            return 'bad value', message
        return 'rejected by a check', message
    except Exception as err:  # noqa: BLE001 - anything else is a bug of its own, reported as such
        return 'crashed', f'{type(err).__name__}: {err}'
    return 'accepted', ''


def test_the_list_is_ms_swifts_page():
    assert DATA['source'] == 'docs/source_en/Instruction/Command-line-parameters.md'
    assert len(DATA['commit']) == 40
    assert DATA['count'] == len(DATA['flags']) == len({f['name'] for f in DATA['flags']})


def test_unsupported_names_only_ms_swift_flags_with_one_line_reasons():
    names = {f['name'] for f in DATA['flags']}
    assert set(UNSUPPORTED) <= names, sorted(set(UNSUPPORTED) - names)
    for name, reason in UNSUPPORTED.items():
        assert reason.strip() and '\n' not in reason, name


BY_FLAG = {}
for _case in CASES:
    BY_FLAG.setdefault(_case[0]['name'], []).append(_case)


@pytest.mark.parametrize('name', list(BY_FLAG))
def test_flag_acts_or_refuses_in_one_line(name):
    """Every command of the flag: accepted, or (for a flag in unsupported.py) refused in one line with its reason.
    A flag the todo list names for a command may still fail there, and must: a flag that starts acting leaves
    the list, so the list stays what is left to do."""
    problems = []
    for flag, commands, argv in BY_FLAG[name]:
        kind, message = outcome(flag, commands, argv)
        command_line = f"swift {'|'.join(commands)} {shlex.join(argv)}"
        listed = any((name, command) in TODO for command in commands)
        if name in UNSUPPORTED and not any(c.__name__ in ACTS_IN.get(name, ()) for c in CLASSES[commands[0]].__mro__):
            if kind == 'accepted':
                problems.append(f'{command_line}: accepted, but unsupported.py says: {UNSUPPORTED[name]}')
            elif '\n' in message or f'--{name}' not in message or UNSUPPORTED[name] not in message:
                problems.append(f'{command_line}: refused with {message!r}, not with one line naming --{name} and '
                                f'its reason {UNSUPPORTED[name]!r}')
        elif kind != 'accepted' and not listed:
            problems.append(f'{command_line}: {kind}: {message}')
        elif kind == 'accepted' and listed:
            problems.append(f'{command_line}: accepted now: take it off {TODO_FILE.name}')
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('command', sorted(CLASSES))
def test_a_flag_a_command_declares_is_never_refused_there(command):
    """unsupported.py refuses a flag on the commands that have no use for it; ACTS_IN must name every arguments
    group that declares it (else, say, swift export's own --merge_lora would be refused)."""
    cls = CLASSES[command]
    declared = {f.name for f in dataclasses.fields(cls) if f.init}
    refused = [name for name in declared if name in UNSUPPORTED
               and not any(c.__name__ in ACTS_IN.get(name, ()) for c in cls.__mro__)]
    assert not refused, f'swift {command} declares and refuses: {sorted(refused)}'


@pytest.mark.parametrize('flag', ABSENT, ids=[f['name'] for f in ABSENT])
def test_flag_of_a_command_not_built_is_refused(flag):
    assert flag['name'] in UNSUPPORTED, (
        f"--{flag['name']} belongs to ms-swift's {', '.join(flag['commands'])}, which this build lacks: "
        'unsupported.py must say why')


@pytest.mark.parametrize('flag_value, command', [(fv, c) for fv, cs in MS_SWIFT3 for c in cs])
def test_ms_swift3_names_still_parse(flag_value, command):
    parse_args(CLASSES[command], REQUIRED[command] + flag_value)


def report() -> None:
    """Each case's outcome today: one line per case that is not accepted, then the totals."""
    totals = {}
    for flag, commands, argv in CASES:
        kind, message = outcome(flag, commands, argv)
        totals[kind] = totals.get(kind, 0) + 1
        if kind != 'accepted':
            print(f"{flag['name']}\t{'+'.join(commands)}\t{kind}\t{message}")
    print(f'# {len(CASES)} cases: ' + ', '.join(f'{k} {v}' for k, v in sorted(totals.items())))
    print(f'# flags of commands this build lacks: {len(ABSENT)}')


if __name__ == '__main__':
    sys.exit(report())
