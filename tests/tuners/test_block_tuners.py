"""LLaMA-Pro and bottleneck adapters (written here), AdaLoRA's schedule, LoRA initialisations, LISA and GaLore."""
import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from swift.arguments import TrainArguments
from swift.export import merge_adapters
from swift.llm import infer_main, sft_main
from swift.tuners import Swift, TunerArguments, prepare_model
from swift.tuners.callbacks import LisaCallback
from swift.utils import SwiftError

from ..conftest import folder_hashes
from .test_peft_tuners import _train_a_few_steps

IDS = torch.tensor([[3, 14, 15, 92, 65, 35, 89]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IDS).logits


def _snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _train_and_check(model, base_logits: torch.Tensor) -> torch.Tensor:
    """Train a few steps; exactly the trainable parameters change, and so do the logits. Returns them."""
    before = _snapshot(model)
    model.train()
    _train_a_few_steps(model)
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, f'{name}: trainable={param.requires_grad} changed={changed}'
    trained = _logits(model)
    assert not torch.allclose(trained, base_logits, atol=1e-4)
    return trained


def _rows(tmp_path) -> str:
    data = tmp_path / 'rows.jsonl'
    data.write_text('{"query": "hi", "response": "hello there"}\n' * 8)
    return str(data)


def _logged_losses(log) -> list[tuple[int, float]]:
    return [(r['global_step'], r['loss']) for r in map(json.loads, log.read_text().splitlines()) if 'loss' in r]


def _sft_argv(tmp_path, model_dir: str, *flags: str) -> list[str]:
    return ['--model', model_dir, '--dataset', _rows(tmp_path), '--max_steps', '3', '--split_dataset_ratio', '0',
            '--logging_steps', '1', '--learning_rate', '1e-3', '--output_dir', str(tmp_path / 'out'), *flags]


def _sft(tmp_path, model_dir: str, *flags: str) -> str:
    """Train 3 steps with the flags as `swift sft` gets them (in this process: the CLI's own path is tested in
    tests/cli and tests/e2e); returns the last checkpoint and checks the loss fell."""
    tmp_path.mkdir(exist_ok=True)
    sft_main(_sft_argv(tmp_path, model_dir, *flags))
    run = next((tmp_path / 'out').glob('v*'))
    losses = [loss for _, loss in _logged_losses(run / 'logging.jsonl')]
    assert losses[-1] < losses[0], losses
    return str(run / 'checkpoint-3')


def _assert_resume_repeats_step_3(tmp_path, model_dir: str, ckpt: str, *flags: str) -> None:
    """Resuming from step 2 (the run saved with --save_steps 2) reloads the tuner: step 3 gives the same loss as the
    uninterrupted run, in a new run folder that leaves the source run untouched."""
    source = Path(ckpt).parent
    step3 = [loss for step, loss in _logged_losses(source / 'logging.jsonl') if step == 3]
    before = folder_hashes(source)
    result = sft_main([*_sft_argv(tmp_path, model_dir, *flags), '--resume_from_checkpoint',
                       ckpt.replace('checkpoint-3', 'checkpoint-2')])
    again = [loss for step, loss in _logged_losses(Path(result['run_dir'], 'logging.jsonl')) if step == 3]
    assert Path(result['run_dir']) != source and folder_hashes(source) == before
    assert len(again) == 1 and again[0] == pytest.approx(step3[0], rel=1e-5)


def _answer(tmp_path, ckpt: str) -> str:
    """`swift infer --adapters CKPT` on one row: the answer."""
    return infer_main(['--adapters', ckpt, '--max_new_tokens', '3', '--val_dataset', _rows(tmp_path) + '#1'])[0][
        'response']


# ---- LLaMA-Pro ---------------------------------------------------------------------------------------------
def test_llamapro_adds_silent_blocks_and_trains_only_them(qwen2_dir, tmp_path):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'llamapro',
                          TunerArguments(llamapro_num_new_blocks=2))
    assert model.config.num_hidden_layers == len(model.model.layers) == 4
    assert len(model.config.layer_types) == 4
    torch.testing.assert_close(_logits(model), base_logits)  # the new blocks add nothing yet
    trainable = {n.split('.')[2] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'1', '3'}  # one copy after each original block
    trained = _train_and_check(model, base_logits)
    model.save_pretrained(tmp_path)
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(tmp_path)), trained)
    # Each block has its own cache slot: generation with the cache equals generation without it.
    with torch.no_grad():
        cached = model.generate(IDS, max_new_tokens=4, do_sample=False)
        uncached = model.generate(IDS, max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_llamapro_groups_must_divide(qwen2_dir):
    with pytest.raises(SwiftError, match='llamapro_num_groups'):
        prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'llamapro',
                      TunerArguments(llamapro_num_new_blocks=3, llamapro_num_groups=3))


def test_llamapro_flag_trains_the_expanded_model(qwen2_dir, tmp_path):
    # With checkpointed blocks too: gradients still reach the new blocks above the frozen ones.
    ckpt = _sft(tmp_path, qwen2_dir, '--train_type', 'llamapro', '--llamapro_num_new_blocks', '2',
                '--gradient_checkpointing', 'true')
    assert json.load(open(f'{ckpt}/config.json'))['num_hidden_layers'] == 4  # a whole model: swift infer --model


# ---- bottleneck adapters -----------------------------------------------------------------------------------
def test_adapter_trains_alone_saves_only_itself_and_reloads(qwen2_dir, tmp_path):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'adapter',
                          TunerArguments(adapter_length=16, adapter_act='silu'))
    torch.testing.assert_close(_logits(model), base_logits)  # up starts at zero
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f'model.layers.{i}.mlp.adapter.{linear}.{kind}'
        for i in range(2) for linear in ('down', 'up') for kind in ('weight', 'bias')}
    trained = _train_and_check(model, base_logits)
    model.save_pretrained(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['adapter_config.json', 'model.safetensors']
    reloaded = Swift.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), str(tmp_path))
    torch.testing.assert_close(_logits(reloaded), trained)
    with pytest.raises(SwiftError, match='cannot be merged'):  # a non-linear branch: nothing to fold in
        merge_adapters(reloaded)


def test_adapter_flag_trains_infers_and_resumes(qwen2_dir, tmp_path):
    flags = ('--train_type', 'adapter', '--adapter_length', '16', '--gradient_checkpointing', 'true')
    ckpt = _sft(tmp_path, qwen2_dir, *flags, '--save_steps', '2')
    assert _answer(tmp_path, ckpt)
    _assert_resume_repeats_step_3(tmp_path, qwen2_dir, ckpt, *flags)


# ---- AdaLoRA -----------------------------------------------------------------------------------------------
def test_adalora_trains_with_the_real_step_count_reloads_and_merges(qwen2_dir, tmp_path):
    ckpt = _sft(tmp_path, qwen2_dir, '--train_type', 'adalora', '--adalora_init_r', '4', '--adalora_target_r', '2',
                '--adalora_tfinal', '1')
    assert json.load(open(f'{ckpt}/adapter_config.json'))['total_step'] == 3  # not peft's placeholder
    base = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    model = PeftModel.from_pretrained(base, ckpt)
    trained = _logits(model)
    assert not torch.allclose(trained, _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir)), atol=1e-5)
    torch.testing.assert_close(_logits(model.merge_and_unload()), trained, atol=1e-4, rtol=1e-4)
    # The budget was allocated: the final step fixed a rank pattern of at most init_r per layer.
    pattern = json.load(open(f'{ckpt}/adapter_config.json'))['rank_pattern']
    assert pattern and all(len(mask) == 4 for mask in pattern.values())


# ---- --init_weights ----------------------------------------------------------------------------------------
@pytest.mark.parametrize('init', ['pissa_niter_2', 'olora'])
def test_pissa_and_olora_checkpoints_fit_the_original_base(init, qwen2_dir, tmp_path):
    torch.manual_seed(0)
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora',
                          TunerArguments(lora_rank=4, lora_dropout=0.0, init_weights=init))
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    torch.testing.assert_close(_logits(model), base_logits, atol=1e-4, rtol=1e-4)  # residual + principal part
    model.train()
    _train_a_few_steps(model)
    trained = _logits(model)
    model.save_pretrained(str(tmp_path))
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), str(tmp_path))
    torch.testing.assert_close(_logits(reloaded), trained, atol=1e-4, rtol=1e-4)


def test_init_weights_false_starts_away_from_the_base(qwen2_dir):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    for init, unchanged in (('true', True), ('gaussian', True), ('false', False)):
        model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora',
                              TunerArguments(init_weights=init, lora_dropout=0.0))
        assert torch.allclose(_logits(model), base_logits, atol=1e-6) == unchanged, init


def _train_args(*flags: str) -> TrainArguments:
    return TrainArguments(model='m', dataset=['d'], **dict(zip(flags[::2], flags[1::2])))


def test_init_weights_errors_are_one_line(qwen2_dir):
    with pytest.raises(SwiftError, match='pissa_niter_N'):
        _train_args('init_weights', 'pisa')
    if not torch.cuda.is_available():  # peft's LoftQ quantizes on cuda
        with pytest.raises(SwiftError, match='needs a GPU'):
            prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora', TunerArguments(init_weights='loftq'))


# ---- LISA and GaLore ---------------------------------------------------------------------------------------
def test_lisa_trains_the_sampled_layer_only(qwen2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    before = _snapshot(model)
    lisa = LisaCallback(model, num_layers=1, interval=5, seed=0)
    rows = [{'input_ids': IDS[0], 'labels': IDS[0]}] * 4
    args = TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=1, learning_rate=1e-3,
                             report_to=[], use_cpu=True, save_strategy='no')
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[lisa]).train()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert {n.split('.')[2] for n in changed if n.startswith('model.layers.')} == {str(lisa.active[0])}
    assert 'model.embed_tokens.weight' in changed and 'model.norm.weight' in changed


def test_lisa_and_galore_flags_train(qwen2_dir, tmp_path):
    _sft(tmp_path / 'lisa', qwen2_dir, '--train_type', 'full', '--lisa_activated_layers', '1',
         '--lisa_step_interval', '2')
    _sft(tmp_path / 'galore', qwen2_dir, '--train_type', 'full', '--use_galore', 'true', '--galore_rank', '4',
         '--galore_target_modules', 'mlp')


def test_galore_without_its_package_and_optional_kernels(monkeypatch, caplog):
    args = _train_args('train_type', 'full', 'use_galore', True, 'galore_rank', 16)
    assert args.optim == 'galore_adamw' and 'rank=16' in args.optim_args
    with pytest.raises(SwiftError, match='full-training'):
        _train_args('use_galore', True)
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None if name == 'galore_torch' else find_spec(name))
    with pytest.raises(SwiftError, match='galore-torch'):
        _train_args('train_type', 'full', 'use_galore', True)
    if importlib.util.find_spec('unsloth') is None:
        assert _train_args('tuner_backend', 'unsloth').tuner_backend == 'peft'
    if not torch.cuda.is_available():
        assert _train_args('use_liger_kernel', True).use_liger_kernel is False
