"""--fsdp and --deepspeed as ms-swift spells them: presets and files become transformers' settings; what cannot run
on this machine stops in one line (exit 2), never a silent fallback (issue 17)."""
import json

import pytest
import torch

from swift.arguments import TrainArguments, parse_args
from swift.arguments.fsdp import fsdp_settings
from swift.cli.main import cli_main
from swift.utils import SwiftError

BASE = ['--model', 'some/model', '--dataset', 'data.jsonl']


def test_fsdp2_preset_is_ms_swifts_config():
    options, config = fsdp_settings('fsdp2', None)
    assert options == 'full_shard auto_wrap'
    assert config == {'fsdp_version': 2, 'reshard_after_forward': True, 'auto_wrap_policy': 'TRANSFORMER_BASED_WRAP',
                      'cpu_ram_efficient_loading': True, 'state_dict_type': 'SHARDED_STATE_DICT',
                      'activation_checkpointing': True}
    fsdp_settings('fsdp2', None)[1]['fsdp_version'] = 1  # each call gets its own copy
    assert fsdp_settings('fsdp2', None)[1]['fsdp_version'] == 2


def test_fsdp_json_file_and_fsdp_config_flag(tmp_path):
    path = tmp_path / 'fsdp_offload.json'  # ms-swift's examples/train/multi-gpu/fsdp_qlora layout
    path.write_text(json.dumps({'fsdp': 'full_shard auto_wrap offload',
                                'fsdp_config': {'fsdp_version': 2, 'state_dict_type': 'SHARDED_STATE_DICT'}}))
    options, config = fsdp_settings(str(path), '{"state_dict_type": "FULL_STATE_DICT"}')
    assert options == 'full_shard auto_wrap offload'
    assert config == {'fsdp_version': 2, 'state_dict_type': 'FULL_STATE_DICT'}
    assert fsdp_settings('shard_grad_op auto_wrap', None) == ('shard_grad_op auto_wrap', {})
    with pytest.raises(SwiftError, match='--fsdp fsdp3: give fsdp2, a JSON file'):
        fsdp_settings('fsdp3', None)
    path.write_text(json.dumps({'fsdp': 'full_shard', 'fsdp_config': {'fsdp_version': 1}}))
    with pytest.raises(SwiftError, match='fsdp_version 1: only FSDP2 is built'):
        fsdp_settings(str(path), None)


def test_fsdp_with_deepspeed_is_refused():
    with pytest.raises(SwiftError, match='--fsdp and --deepspeed: choose one'):
        parse_args(TrainArguments, BASE + ['--fsdp', 'fsdp2', '--deepspeed', 'zero3'])
    args = parse_args(TrainArguments, BASE + ['--fsdp', 'fsdp2'])
    assert args.fsdp is True and args.fsdp_config['version'] == 2  # transformers' own reading of the preset
    assert args.fsdp_plugin_args['state_dict_type'] == 'SHARDED_STATE_DICT'
    assert args.fsdp_plugin_args['auto_wrap_policy'] == 'TRANSFORMER_BASED_WRAP'


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal is for a machine without a GPU')
def test_fsdp_on_a_cpu_stops_in_one_line(qwen2_dir, tmp_path, capsys):
    assert cli_main(['sft', '--model', qwen2_dir, '--dataset', 'data.jsonl', '--fsdp', 'fsdp2',
                     '--output_dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('swift sft: error: --fsdp needs CUDA GPUs: accelerate applies FSDP only on GPUs')
    # In-process, a library logger whose handler holds an earlier test's closed capture stream prints Python's
    # "--- Logging error ---" report; that is pytest's plumbing, not the command's output.
    tracebacks = [i for i, line in enumerate(err) if line.startswith('Traceback')
                  and not (i and err[i - 1] == '--- Logging error ---')]
    assert not tracebacks and not list(tmp_path.iterdir())
