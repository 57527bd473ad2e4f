"""--external_plugins on every command: the files are imported as the command starts, so what they register (here a
template of one's own) is found by name, as ms-swift's plugin files are."""
import pytest

from swift.arguments import ExportArguments, InferArguments, TrainArguments
from swift.pipelines.common import load_folder_and_template, to_arguments
from swift.utils import SwiftError

PLUGIN = '''
import dataclasses
from swift.template import TEMPLATE_REGISTRY, register_template

meta, template_cls = TEMPLATE_REGISTRY['qwen']
register_template(dataclasses.replace(meta, template_type='{name}', default_system='Registered by a plugin.'),
                  template_cls)
'''


@pytest.mark.parametrize('cls, extra', [(InferArguments, []), (ExportArguments, []),
                                        (TrainArguments, ['--dataset', 'rows.jsonl'])])
def test_a_plugins_template_is_there_by_name(cls, extra, qwen2_dir, tmp_path):
    name = f'plugin_chat_{cls.__name__}'  # one registration per test: the registry refuses a name twice
    plugin = tmp_path / 'my_plugin.py'
    plugin.write_text(PLUGIN.format(name=name))
    argv = ['--model', qwen2_dir, '--template', name, '--external_plugins', str(plugin), *extra]
    args = to_arguments(cls, argv)
    to_arguments(cls, argv)  # a second command in the same process: the plugin is not imported (registered) twice
    _, template = load_folder_and_template(args)
    assert template.template_type == name
    assert template.default_system == 'Registered by a plugin.'


def test_a_missing_or_broken_plugin_is_one_line(qwen2_dir, tmp_path):
    with pytest.raises(SwiftError, match='^external plugin file not found: nowhere.py$'):
        to_arguments(InferArguments, ['--model', qwen2_dir, '--external_plugins', 'nowhere.py'])
    broken = tmp_path / 'broken.py'
    broken.write_text('import no_such_module_here\n')
    with pytest.raises(SwiftError, match="failed to import: ModuleNotFoundError: No module named 'no_such_module"):
        to_arguments(InferArguments, ['--model', qwen2_dir, '--external_plugins', str(broken)])
