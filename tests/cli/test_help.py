"""``swift <command> --help``: the usage line names the command, flags come in titled groups, each with a help."""
import argparse

import pytest

from swift.arguments import (AppArguments, DeployArguments, ExportArguments, InferArguments, RolloutArguments,
                             TrainArguments)
from swift.arguments.parser import SwiftArgumentParser, program
from swift.rlhf.arguments import RLHFArguments

from ..conftest import run_swift

ALL = [TrainArguments, RLHFArguments, InferArguments, DeployArguments, AppArguments, ExportArguments,
       RolloutArguments]


@pytest.mark.parametrize('command, groups', [
    ('app', ['generation flags:', 'vLLM flags:', 'app (web page) flags:']),
    ('sft', ['data flags:', 'template flags:', 'tuner flags:', 'training flags:']),
    ('merge-lora', ['export flags:']),
])
def test_help_names_the_command_and_groups_the_flags(command, groups):
    result = run_swift(command, '--help')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] == f'usage: swift {command} [flags]'
    headings = [line for line in result.stdout.splitlines() if line.endswith(' flags:')]
    assert headings[0] == 'model flags:' and set(groups) <= set(headings), headings


def _parser(cls) -> SwiftArgumentParser:
    with program('swift test'):
        return SwiftArgumentParser(cls)


def _group_of(parser: argparse.ArgumentParser, flag: str) -> str:
    return next(group.title for group in parser._action_groups
                for action in group._group_actions if flag in action.option_strings)


@pytest.mark.parametrize('cls', ALL, ids=lambda cls: cls.__name__)
def test_every_flag_has_a_help_and_a_titled_group(cls):
    parser = _parser(cls)
    assert parser.format_help().startswith('usage: swift test [flags]')
    flags = [action for action in parser._actions if action.option_strings]
    assert len(flags) > 20
    assert [action.option_strings for action in flags if not (action.help or '').strip()] == []
    untitled = [action.dest for group in parser._action_groups if not group.title.endswith(' flags')
                for action in group._group_actions]
    assert untitled == ['help']  # every flag but -h sits in a topic group


@pytest.mark.parametrize('cls, flag, title', [
    (TrainArguments, '--lora_rank', 'tuner flags'),
    (TrainArguments, '--learning_rate', 'training flags'),
    (TrainArguments, '--max_length', 'template flags'),
    (RLHFArguments, '--beta', 'rlhf flags'),
    (InferArguments, '--vllm_max_num_seqs', 'vLLM flags'),
    (DeployArguments, '--port', 'deploy (HTTP server) flags'),
    (ExportArguments, '--merge_lora', 'export flags'),
])
def test_flags_sit_in_their_topic(cls, flag, title):
    assert _group_of(_parser(cls), flag) == title


def test_overridden_transformers_defaults_keep_their_help():
    per_device = next(a for a in _parser(TrainArguments)._actions if a.dest == 'per_device_train_batch_size')
    assert 'batch size' in per_device.help.lower() and per_device.default == 1
