"""Flags of the seeds parse with the seeds' meaning."""
import importlib.util

import pytest

from swift.arguments import ExportArguments, InferArguments, TrainArguments, parse_args
from swift.arguments.deepspeed import deepspeed_config
from swift.utils import SwiftError

BASE = ['--model', 'some/model', '--dataset', 'data.jsonl']


def test_train_type_and_tuner_type_are_the_same_flag():
    assert parse_args(TrainArguments, BASE + ['--train_type', 'full']).train_type == 'full'
    assert parse_args(TrainArguments, BASE + ['--tuner_type', 'full']).train_type == 'full'
    assert parse_args(TrainArguments, BASE + ['--tuner_type=full']).tuner_type == 'full'


def test_train_type_dora_is_lora_with_dora():
    args = parse_args(TrainArguments, BASE + ['--train_type', 'dora'])
    assert args.train_type == 'lora' and args.use_dora


def test_bfloat16_on_a_cpu_computes_in_float32(caplog):
    args = parse_args(TrainArguments, BASE + ['--torch_dtype', 'bfloat16'])
    assert args.torch_dtype == 'float32' and not args.bf16 and args.use_cpu


def test_seed_defaults_and_conversions():
    args = parse_args(TrainArguments, BASE + ['--warmup_ratio', '0.05', '--dataset', 'a', 'b', 'c',
                                              '--model_name', '小黄', 'Xiao Huang', '--save_steps', '50'])
    assert args.warmup_steps == 0.05  # transformers reads a float below 1 as a ratio
    assert args.dataset == ['a', 'b', 'c']
    assert args.model_name == ['小黄', 'Xiao Huang']
    assert args.learning_rate == 1e-4  # LoRA default
    assert args.eval_steps == 50  # follows save_steps
    assert parse_args(TrainArguments, BASE + ['--train_type', 'full']).learning_rate == 1e-5
    assert 'tensorboard' in args.report_to


def test_deepspeed_is_never_skipped(monkeypatch):
    # DeepSpeed runs on a CPU (tests/e2e/test_distributed.py): the shorthand becomes its config, GPU or not
    assert parse_args(TrainArguments, BASE + ['--deepspeed', 'zero2']).deepspeed['zero_optimization']['stage'] == 2
    with pytest.raises(SwiftError, match='--deepspeed zero4: give one of zero0, zero1, zero2, zero3'):
        parse_args(TrainArguments, BASE + ['--deepspeed', 'zero4'])
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'deepspeed' else
                        real_find_spec(name, *a))
    with pytest.raises(SwiftError, match=r"^--deepspeed zero3 needs deepspeed: pip install 'swift\[deepspeed\]'$"):
        parse_args(TrainArguments, BASE + ['--deepspeed', 'zero3'])


def test_deepspeed_shorthands_are_ms_swift_configs():
    zero2 = deepspeed_config('zero2')['zero_optimization']
    assert zero2['stage'] == 2 and zero2['offload_optimizer']['device'] == 'none' and 'offload_param' not in zero2
    zero3 = deepspeed_config('zero3_offload')
    assert zero3['zero_optimization']['stage'] == 3
    assert zero3['zero_optimization']['offload_optimizer']['device'] == 'cpu'
    assert zero3['zero_optimization']['offload_param']['device'] == 'cpu'
    assert zero3['zero_optimization']['stage3_gather_16bit_weights_on_model_save']  # checkpoints load without it
    # what transformers fills in from the training arguments
    assert zero3['train_micro_batch_size_per_gpu'] == zero3['gradient_accumulation_steps'] == 'auto'
    assert deepspeed_config('zero0')['zero_optimization'] == {'stage': 0, 'overlap_comm': False,
                                                              'contiguous_gradients': True, 'reduce_bucket_size': 2e8}


def test_json_columns_are_parsed():
    args = parse_args(TrainArguments, BASE + ['--columns', '{"question": "query"}'])
    assert args.columns == {'question': 'query'}


def test_abbreviations_are_not_accepted():
    with pytest.raises(SwiftError, match='--stream'):
        parse_args(TrainArguments, BASE + ['--stream', 'true'])


def test_ignore_args_error_warns_about_unknown_flags_and_parses_the_rest(caplog):
    argv = BASE + ['--lora_rank', '4', '--no_such_flag', '1', '-f', 'kernel.json']
    with pytest.raises(SwiftError, match='^unknown flag --no_such_flag'):
        parse_args(TrainArguments, argv)
    args = parse_args(TrainArguments, argv + ['--ignore_args_error', 'true'])
    assert args.lora_rank == 4
    assert 'ignoring unknown flag --no_such_flag' in caplog.text and 'kernel.json' in caplog.text


def test_infer_and_export_accept_the_seed_flags():
    args = parse_args(InferArguments, ['--adapters', 'ckpt', '--stream', 'true', '--temperature', '0',
                                       '--max_new_tokens', '2048', '--infer_backend', 'pt', '--load_data_args', 'true',
                                       '--max_batch_size', '8', '--merge_lora', 'true', '--vllm_max_model_len', '8192',
                                       '--val_dataset', 'v.jsonl', '--load_args', 'false'])
    assert args.stream and args.temperature == 0 and args.max_batch_size == 8 and args.val_dataset == ['v.jsonl']
    args = parse_args(ExportArguments, ['--adapters', 'ckpt', '--push_to_hub', 'true', '--hub_model_id', 'me/m',
                                        '--hub_token', 't', '--use_hf', 'false'])
    assert args.push_to_hub and args.hub_model_id == 'me/m' and not args.use_hf


@pytest.mark.parametrize('argv', [['--split_dataset_ratio', '1.5'], ['--max_length', '0'],
                                  ['--warmup_ratio', '2']])
def test_bad_values_raise(argv):
    with pytest.raises(SwiftError):
        parse_args(TrainArguments, BASE + argv)


def test_system_is_a_string_or_a_text_file(tmp_path):
    from swift.pipelines.common import read_system
    prompt = tmp_path / 'prompt.txt'
    prompt.write_text('Think step by step.\n')
    assert read_system(str(prompt)) == 'Think step by step.'
    assert read_system('You are a helpful assistant.') == 'You are a helpful assistant.'
    assert read_system(None) is None
