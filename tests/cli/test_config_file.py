"""``swift <command> config.yaml|config.json [flags]``: ms-swift's config files. The file's flags come first, so
the command line wins; lists are several values, booleans true/false; a bad file is one line naming it, exit 2."""
import json
import os

import pytest

from swift.arguments import InferArguments, parse_args
from swift.cli.main import expand_config_file
from swift.utils import SwiftError

from ..conftest import run_swift

CONFIG = {'model': 'some/model', 'stop_words': ['Observation:', '</s>'], 'stream': True, 'use_hf': False,
          'temperature': 0, 'max_new_tokens': 16, 'columns': {'question': 'query'}, 'system': None}
YAML = """# generation args
model: some/model
stop_words: ['Observation:', '</s>']
stream: true
use_hf: false
temperature: 0
max_new_tokens: 16
columns: {question: query}
system:
"""


@pytest.fixture(params=['yaml', 'json'])
def config_path(request, tmp_path) -> str:
    path = tmp_path / f'config.{request.param}'
    path.write_text(YAML if request.param == 'yaml' else json.dumps(CONFIG))
    return str(path)


def test_config_file_flags_in_ms_swift_form(config_path):
    assert expand_config_file([config_path, '--max_new_tokens', '4']) == [
        '--model', 'some/model', '--stop_words', 'Observation:', '</s>', '--stream', 'true', '--use_hf', 'false',
        '--temperature', '0', '--max_new_tokens', '16', '--columns', '{"question": "query"}', '--max_new_tokens', '4']


def test_config_values_parse_and_the_command_line_wins(config_path):
    argv = expand_config_file([config_path, '--max_new_tokens', '4', '--stop_words', 'END'])
    args = parse_args(InferArguments, argv)
    assert (args.model, args.stream, args.use_hf, args.temperature) == ('some/model', True, False, 0)
    assert args.columns == {'question': 'query'} and args.system is None  # null leaves the default
    assert args.max_new_tokens == 4 and args.stop_words == ['END']


def test_argv_without_a_config_file_is_unchanged():
    assert expand_config_file(['--model', 'x.yaml']) == ['--model', 'x.yaml']
    assert expand_config_file([]) == []


def test_env_sets_only_unset_variables(tmp_path, monkeypatch):
    for name in ('SWIFT_TEST_UNSET', 'SWIFT_TEST_SET'):
        monkeypatch.setenv(name, 'user')  # monkeypatch restores both afterwards
    monkeypatch.delenv('SWIFT_TEST_UNSET')
    path = tmp_path / 'env.yaml'
    path.write_text('ENV:\n  SWIFT_TEST_UNSET: 12\n  SWIFT_TEST_SET: file\nmodel: m\n')
    assert expand_config_file([str(path)]) == ['--model', 'm']
    assert os.environ['SWIFT_TEST_UNSET'] == '12' and os.environ['SWIFT_TEST_SET'] == 'user'


@pytest.mark.parametrize('name, text, needle', [
    ('missing.yaml', None, 'No such file'),
    ('list.yaml', '- model\n- m\n', 'must be a mapping of flag names to values, not list'),
    ('empty.yml', '', 'must be a mapping of flag names to values, not NoneType'),
    ('bad.yaml', 'model: m\n  dataset: [a\n', 'invalid YAML'),
    ('bad.json', '{"model": "m",\n}', 'invalid JSON'),
    ('env.yaml', 'ENV: [A]\nmodel: m\n', 'ENV must be a mapping'),
])
def test_bad_config_file_is_one_line_naming_it(tmp_path, name, text, needle):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SwiftError, match=needle) as err:
        expand_config_file([str(path), '--model', 'm'])
    assert str(path) in str(err.value) and '\n' not in str(err.value)


@pytest.mark.parametrize('command', ['sft', 'deploy'])
def test_cli_exits_2_on_a_bad_config_file(tmp_path, command):
    path = tmp_path / 'bad.yaml'
    path.write_text('model: m\n  dataset: [a\n')
    result = run_swift(command, str(path))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip() == f'swift {command}: error: config file {path}:2: invalid YAML: ' \
                                    'mapping values are not allowed here'
