"""``swift deploy`` flags: named and bare adapters, and one-line errors."""
import pytest

from swift.arguments import DeployArguments, parse_args
from swift.utils import SwiftError


def test_named_adapters_are_served_and_bare_ones_applied():
    args = parse_args(DeployArguments, ['--adapters', 'lora1=/ckpt/a', 'lora2=/ckpt/b=c', '/ckpt/bare'])
    assert args.adapter_mapping == {'lora1': '/ckpt/a', 'lora2': '/ckpt/b=c'}
    assert args.adapters == ['/ckpt/bare']
    assert (args.host, args.port, args.max_batch_size, args.api_key) == ('127.0.0.1', 8000, 8, None)


@pytest.mark.parametrize('argv, needle', [
    (['--adapters', '=/ckpt/a'], "'name=path'"),
    (['--adapters', 'a=/x', 'a=/y'], "'a' twice"),
    (['--model', 'm', '--port', '70000'], '--port'),
    (['--port', '8000'], '--model'),
])
def test_bad_deploy_flags_are_one_line(argv, needle):
    with pytest.raises(SwiftError, match=needle):
        parse_args(DeployArguments, argv)


def test_checkpoint_args_come_from_a_named_adapter(tmp_path):
    (tmp_path / 'args.json').write_text('{"model": "/base"}')
    args = parse_args(DeployArguments, ['--adapters', f'lora1={tmp_path}'])
    assert args.checkpoint_dir == str(tmp_path)
