"""The training flags the trainer and the run read: losses, accuracy, logits_to_keep, early stopping, optimizers,
run folder, checkpoint links and shards, resume of the weights only, dataloader order."""
import functools
import json
import os

import pytest
import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainingArguments

from swift.arguments import TrainArguments, group, parse_args
from swift.llm import sft_main
from swift.utils import SwiftError


def _rows(path, n: int = 8) -> str:
    with open(path, 'w') as f:
        for i in range(n):
            f.write(json.dumps({'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                                             {'role': 'assistant', 'content': f'{i} plus {i} is {2 * i}.'}]}) + '\n')
    return str(path)


def _sft(model_dir, tmp_path, *extra, steps: int = 1) -> dict:
    os.makedirs(tmp_path, exist_ok=True)
    data = _rows(tmp_path / 'rows.jsonl')
    return sft_main(['--model', model_dir, '--dataset', data, '--output_dir', str(tmp_path / 'out'),
                     '--max_steps', str(steps), '--logging_steps', '1', '--split_dataset_ratio', '0',
                     '--per_device_train_batch_size', '2', '--save_steps', '1000', '--dataloader_num_workers', '0',
                     '--train_dataloader_shuffle', 'false', *extra])


def _first(result: dict, key: str) -> float:
    return next(r[key] for r in result['log_history'] if key in r)


def test_cross_entropy_matches_the_model_loss_and_dft_weights_it_down(qwen2_dir, tmp_path):
    plain = _first(_sft(qwen2_dir, tmp_path / 'a'), 'loss')
    ce = _first(_sft(qwen2_dir, tmp_path / 'b', '--loss_type', 'cross_entropy'), 'loss')
    dft = _first(_sft(qwen2_dir, tmp_path / 'c', '--enable_dft_loss', 'true'), 'loss')
    assert ce == pytest.approx(plain, rel=1e-4)
    assert dft < 0.5 * plain  # a random tiny model gives each answer token a small probability


@pytest.mark.parametrize('strategy', ['token', 'seq'])
def test_accuracy_is_logged_by_strategy(qwen2_dir, tmp_path, strategy):
    result = _sft(qwen2_dir, tmp_path, '--acc_strategy', strategy)
    acc = _first(result, f'{strategy}_acc')
    assert 0 <= acc <= 1
    other = 'seq' if strategy == 'token' else 'token'
    assert not any(f'{other}_acc' in r for r in result['log_history'])


def test_logits_to_keep_skips_the_prompt_and_keeps_the_loss(qwen2_dir, tmp_path, monkeypatch):
    from transformers.models.qwen2 import modeling_qwen2
    seen, forward = [], modeling_qwen2.Qwen2ForCausalLM.forward

    @functools.wraps(forward)  # keeps the signature, which says the model takes logits_to_keep
    def spy(self, *args, **kwargs):
        seen.append(kwargs.get('logits_to_keep', 0))
        return forward(self, *args, **kwargs)
    monkeypatch.setattr(modeling_qwen2.Qwen2ForCausalLM, 'forward', spy)
    # training steps narrow the head to labelled positions (tests/speed/test_sft_label_logits.py); this is the
    # logits_to_keep slicing that evaluation, and training without that narrowing, use
    from swift.trainers import SwiftTrainer
    monkeypatch.setattr(SwiftTrainer, 'label_logits_only', False)
    kept = _first(_sft(qwen2_dir, tmp_path / 'a', '--use_logits_to_keep', 'true'), 'loss')
    assert seen and all(isinstance(n, int) and n > 0 for n in seen)
    seen.clear()
    full = _first(_sft(qwen2_dir, tmp_path / 'b', '--use_logits_to_keep', 'false'), 'loss')
    assert seen and all(n == 0 for n in seen)
    assert kept == pytest.approx(full, rel=1e-4)


def test_early_stop_interval_stops_when_eval_loss_stalls(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--learning_rate', '0', '--early_stop_interval', '1', '--eval_steps', '1',
                  '--save_steps', '1', '--split_dataset_ratio', '0.25', steps=20)
    evals = [r for r in result['log_history'] if 'eval_loss' in r]
    assert len(evals) == 2, evals  # the first sets the best, the second does not beat it


def test_evaluation_logs_accuracy_beside_its_loss(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--eval_metric', 'acc', '--acc_strategy', 'seq', '--eval_steps', '1',
                  '--split_dataset_ratio', '0.25', steps=1)
    record = next(r for r in result['log_history'] if 'eval_loss' in r)
    assert 0 <= record['eval_seq_acc'] <= 1 and 'seq_acc' in next(r for r in result['log_history'] if 'loss' in r)


def test_early_stop_interval_needs_evaluation_rows(qwen2_dir, tmp_path):
    with pytest.raises(SwiftError, match='--early_stop_interval'):
        _sft(qwen2_dir, tmp_path, '--early_stop_interval', '1')


def test_add_version_false_runs_in_output_dir_and_links_checkpoints(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--add_version', 'false', '--create_checkpoint_symlink', 'true')
    out = str(tmp_path / 'out')
    assert result['run_dir'] == out and os.path.isfile(os.path.join(out, 'logging.jsonl'))
    last = os.path.join(out, 'last')
    assert os.path.islink(last) and os.path.realpath(last) == os.path.realpath(os.path.join(out, 'checkpoint-1'))
    assert os.path.islink(os.path.join(out, 'best')) and result['last_model_checkpoint'] == last


def test_max_shard_size_splits_a_full_checkpoint(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--train_type', 'full', '--max_shard_size', '200KB')
    files = os.listdir(result['last_model_checkpoint'])
    assert 'model.safetensors.index.json' in files
    assert sum(name.endswith('.safetensors') for name in files) > 1


def test_muon_steps_matrices_with_muon_and_the_rest_with_adamw(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--train_type', 'full', '--optimizer', 'muon', '--learning_rate', '1e-2',
                  '--save_steps', '1', steps=2)
    state = torch.load(os.path.join(result['last_model_checkpoint'], 'optimizer.pt'), weights_only=False)
    assert set(state) == {'muon', 'adamw'}
    assert state['muon']['state'] and state['adamw']['state']  # both stepped
    assert all('momentum_buffer' in s for s in state['muon']['state'].values())


def test_resume_only_model_restarts_from_step_zero_with_the_weights(qwen2_dir, tmp_path):
    first = _sft(qwen2_dir, tmp_path / 'a', '--train_type', 'full', '--learning_rate', '1e-3', '--save_steps', '2',
                 steps=2)
    ckpt = first['last_model_checkpoint']
    again = _sft(qwen2_dir, tmp_path / 'b', '--train_type', 'full', '--learning_rate', '1e-3', '--save_steps', '2',
                 '--resume_from_checkpoint', ckpt, '--resume_only_model', 'true', '--ignore_data_skip', 'true',
                 steps=2)
    steps = [r['step'] for r in again['log_history'] if 'loss' in r]
    assert steps[0] == 1  # a fresh run over the data ...
    base = _first(first, 'loss')
    assert _first(again, 'loss') < base  # ... from the trained weights


def test_resume_only_model_skips_optimizer_state(qwen2_dir, tmp_path, monkeypatch):
    from swift.trainers import SwiftTrainer
    first = _sft(qwen2_dir, tmp_path / 'a', '--train_type', 'full', '--save_steps', '2', steps=2)
    loaded = []
    original = Trainer._load_optimizer_and_scheduler
    monkeypatch.setattr(Trainer, '_load_optimizer_and_scheduler',
                        lambda self, ckpt: (loaded.append(ckpt), original(self, ckpt)))
    again = _sft(qwen2_dir, tmp_path / 'b', '--train_type', 'full', '--save_steps', '2', '--resume_from_checkpoint',
                 first['last_model_checkpoint'], '--resume_only_model', 'true', steps=3)
    # the checkpoint's state carries steps 1 and 2: the data already seen is skipped
    assert [r['step'] for r in again['log_history'] if 'loss' in r] == [1, 2, 3]
    assert loaded == [] and issubclass(SwiftTrainer, Trainer)


def test_train_dataloader_shuffle_false_gives_a_sequential_sampler():
    args = parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--train_dataloader_shuffle', 'false'])
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=group(args, TrainingArguments, output_dir='x', eval_strategy='no'),
                      train_dataset=[{'x': 1}] * 4)
    assert isinstance(trainer._get_train_sampler(), SequentialSampler)


def test_galore_extras_reach_transformers():
    args = parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--train_type', 'full',
                                       '--optimizer', 'galore', '--galore_proj_type', 'left',
                                       '--galore_optim_per_parameter', 'true'])
    assert args.use_galore and args.optim == 'galore_adamw_layerwise' and 'proj_type=left' in args.optim_args


@pytest.mark.parametrize('argv, words', [
    (['--loss_type', 'infonce'], '--task_type embedding'), (['--loss_type', 'sigmoid'], 'cross_entropy'),
    (['--optimizer', 'adam'], 'choose one of'),
    (['--optimizer', 'lorap'], '--lorap_lr_ratio'), (['--safe_serialization', 'false'], 'safetensors only'),
    (['--early_stop_interval', '0'], 'positive'), (['--eval_metric', 'nlg'], 'not built yet'),
    (['--eval_metric', 'infonce'], 'issue 15')])
def test_bad_values_are_one_line(argv, words):
    with pytest.raises(SwiftError, match=words) as err:
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', *argv])
    assert '\n' not in str(err.value) and argv[0] in str(err.value)


@pytest.mark.parametrize('length, sequences', [(120, 4), (60, 8)])
def test_packing_length_sets_the_packed_sequence_size(qwen2_dir, tmp_path, length, sequences):
    # eight rows of about 55 tokens: two fit in 120 tokens, one in 60
    result = _sft(qwen2_dir, tmp_path, '--packing', 'true', '--max_length', '512', '--packing_length', str(length),
                  '--per_device_train_batch_size', '1', '--num_train_epochs', '1', steps=-1)
    assert result['log_history'][-1]['step'] == sequences


@pytest.mark.parametrize('proj_type, layerwise', [('left', 'false'), ('std', 'true')])
def test_galore_trains_with_its_projection_type(qwen2_dir, tmp_path, proj_type, layerwise):
    result = _sft(qwen2_dir, tmp_path, '--train_type', 'full', '--optimizer', 'galore', '--galore_rank', '4',
                  '--galore_proj_type', proj_type, '--galore_optim_per_parameter', layerwise, '--save_steps', '1',
                  steps=2)
    assert [r['step'] for r in result['log_history'] if 'loss' in r] == [1, 2]
    if layerwise == 'false':
        state = torch.load(os.path.join(result['last_model_checkpoint'], 'optimizer.pt'), weights_only=False)
        assert any(group.get('proj_type') == proj_type for group in state['param_groups'])


def test_max_epochs_stops_at_the_end_of_that_epoch(qwen2_dir, tmp_path):
    result = _sft(qwen2_dir, tmp_path, '--num_train_epochs', '3', '--max_epochs', '1', steps=-1)
    assert result['log_history'][-1]['step'] == 4  # 8 rows, 2 a batch: one epoch
    assert result['last_model_checkpoint'].endswith('checkpoint-4')


def test_logging_dir_receives_the_tensorboard_events(qwen2_dir, tmp_path):
    pytest.importorskip('tensorboard')
    _sft(qwen2_dir, tmp_path, '--logging_dir', str(tmp_path / 'tb'), '--report_to', 'tensorboard')
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path / 'tb'))


def test_galore_with_embedding_projects_the_embedding_table(qwen2_dir, tmp_path):
    sizes = {}
    for flag in ('false', 'true'):
        result = _sft(qwen2_dir, tmp_path / flag, '--train_type', 'full', '--optimizer', 'galore', '--galore_rank', '4',
                      '--galore_with_embedding', flag, '--save_steps', '1', steps=1)
        state = torch.load(os.path.join(result['last_model_checkpoint'], 'optimizer.pt'), weights_only=False)
        sizes[flag] = next(len(g['params']) for g in state['param_groups'] if 'rank' in g)
    assert sizes['true'] == sizes['false'] + 1  # the tiny model's one (tied) embedding table
