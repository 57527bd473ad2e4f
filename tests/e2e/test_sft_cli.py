"""The seeds' commands, run as a user types them, on tiny local models."""
import glob
import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from ..conftest import run_swift

SEED_SFT_FLAGS = [
    '--train_type', 'lora', '--lora_rank', '8', '--lora_alpha', '32', '--target_modules', 'all-linear',
    '--torch_dtype', 'bfloat16', '--num_train_epochs', '1', '--per_device_train_batch_size', '1',
    '--gradient_accumulation_steps', '2', '--learning_rate', '1e-4', '--max_length', '2048', '--eval_steps', '4',
    '--save_steps', '4', '--save_total_limit', '2', '--logging_steps', '2', '--system', 'You are a helpful assistant.',
    '--warmup_ratio', '0.05', '--dataloader_num_workers', '4', '--attn_impl', 'flash_attn',
]


def _last_checkpoint(run_dir: str) -> str:
    checkpoints = [p for p in glob.glob(os.path.join(run_dir, 'checkpoint-*')) if p.rsplit('-', 1)[1].isdigit()]
    return max(checkpoints, key=lambda p: int(p.rsplit('-', 1)[1]))


def _run_dir(output_dir) -> str:
    runs = sorted(glob.glob(os.path.join(output_dir, 'v*-*')))
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope='module')
def seed_run(qwen2_dir, conformance_dir, tmp_path_factory):
    """The seed sft command on a Qwen2-architecture folder, swapping only model and dataset."""
    out = tmp_path_factory.mktemp('seed-run')
    result = run_swift('sft', '--model', qwen2_dir, '--dataset', os.path.join(conformance_dir, 'chatml.jsonl'),
                       'swift/self-cognition#20', '--model_author', 'swift', '--model_name', 'swift-robot',
                       '--output_dir', str(out), *SEED_SFT_FLAGS, env={'CUDA_VISIBLE_DEVICES': '0'})
    assert result.returncode == 0, result.stderr[-3000:]
    return _run_dir(out), result


def test_seed_command_runs_and_writes_the_ms_swift_layout(seed_run):
    run_dir, result = seed_run
    assert 'computes in float32' in result.stderr  # --torch_dtype bfloat16 on a CPU
    assert 'using sdpa' in result.stderr  # --attn_impl flash_attn without flash-attn
    assert os.path.basename(run_dir).startswith('v0-')
    for name in ('args.json', 'logging.jsonl', 'images/train_loss.png', 'images/train_learning_rate.png',
                 'images/train_grad_norm.png'):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert glob.glob(os.path.join(run_dir, 'runs', '*', 'events.out.tfevents.*'))
    checkpoints = sorted(glob.glob(os.path.join(run_dir, 'checkpoint-*')))
    assert 1 <= len(checkpoints) <= 2  # --save_total_limit 2
    last = max(checkpoints, key=lambda p: int(p.rsplit('-', 1)[1]))
    for name in ('adapter_model.safetensors', 'adapter_config.json', 'args.json', 'optimizer.pt', 'scheduler.pt',
                 'trainer_state.json'):
        assert os.path.isfile(os.path.join(last, name)), name
    assert f'last_model_checkpoint: {last}' in result.stderr
    assert not os.path.exists(os.path.join(run_dir, '.staging'))
    records = [json.loads(line) for line in open(os.path.join(run_dir, 'logging.jsonl'))]
    assert any('loss' in r and 'tokens_per_second' in r for r in records)
    assert any('eval_loss' in r for r in records)
    saved = json.load(open(os.path.join(last, 'args.json')))
    assert saved['template'] == 'qwen' and saved['system'] == 'You are a helpful assistant.'
    assert saved['train_type'] == 'lora' and saved['torch_dtype'] == 'float32'


def test_infer_reads_the_checkpoint_args_and_answers_a_dataset(seed_run, conformance_dir, tmp_path):
    run_dir, _ = seed_run
    ckpt = _last_checkpoint(run_dir)
    result_path = tmp_path / 'answers.jsonl'
    result = run_swift('infer', '--adapters', ckpt, '--infer_backend', 'pt', '--temperature', '0',
                       '--max_new_tokens', '8', '--val_dataset', os.path.join(conformance_dir, 'swift_single.jsonl'),
                       '--max_batch_size', '2', '--result_path', str(result_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in open(result_path)]
    assert len(rows) == 3
    assert rows[0]['labels'] == '22222' and rows[0]['messages'][-1]['role'] == 'assistant'
    assert rows[0]['messages'][-1]['content'] == rows[0]['response']


def test_interactive_chat_streams_clears_and_exits(seed_run):
    run_dir, _ = seed_run
    ckpt = _last_checkpoint(run_dir)
    result = run_swift('infer', '--adapters', ckpt, '--stream', 'true', '--temperature', '0', '--max_new_tokens', '4',
                       input='who are you?\nclear\nhello\nexit\n')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('<<< ') == 4  # two questions, the clear, and the exit


def test_export_merge_gives_the_same_logits_as_base_plus_adapter(seed_run, qwen2_dir):
    from peft import PeftModel
    run_dir, _ = seed_run
    ckpt = _last_checkpoint(run_dir)
    base = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    adapted = PeftModel.from_pretrained(base, ckpt)
    _make_lora_nonzero(adapted)  # 4 steps at lr 1e-4 barely move B; make the check meaningful
    adapted.save_pretrained(ckpt)
    result = run_swift('export', '--adapters', ckpt, '--merge_lora', 'true')
    assert result.returncode == 0, result.stderr[-3000:]
    assert glob.glob(f'{ckpt}-merged/*.safetensors') and not glob.glob(f'{ckpt}-merged/*.bin')
    merged = AutoModelForCausalLM.from_pretrained(f'{ckpt}-merged')
    ids = torch.tensor([[1, 5, 9, 20, 33, 7]])
    with torch.no_grad():
        expected = adapted(ids).logits
        got = merged(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(qwen2_dir)(ids).logits
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapter changes the output
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _make_lora_nonzero(model) -> None:
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if 'lora_B' in name:
            param.data.normal_(0, 0.05)


def test_infer_on_the_runs_validation_split_and_with_merge_lora(seed_run, tmp_path):
    run_dir, _ = seed_run
    ckpt = _last_checkpoint(run_dir)
    result_path = tmp_path / 'val.jsonl'
    result = run_swift('infer', '--adapters', ckpt, '--infer_backend', 'pt', '--temperature', '0',
                       '--max_new_tokens', '4', '--load_data_args', 'true', '--max_batch_size', '4', '--merge_lora',
                       'true', '--result_path', str(result_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(os.path.join(f'{ckpt}-merged', 'model.safetensors'))
    rows = [json.loads(line) for line in open(result_path)]
    # The run held out 1% of 23 rows with --data_seed 42: the same single row comes back.
    assert len(rows) == 1 and rows[0]['labels']
