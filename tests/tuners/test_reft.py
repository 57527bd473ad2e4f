"""ReFT (written here): LoReFT and NoReFT interventions on decoder layer outputs, saved and loaded by swift."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from swift.arguments import TrainArguments
from swift.export import merge_adapters
from swift.tuners import Swift, TunerArguments, prepare_model
from swift.utils import SwiftError

from swift.llm import export_main

from .test_block_tuners import IDS, _answer, _assert_resume_repeats_step_3, _logits, _sft, _train_and_check

R_WEIGHT = 'proj.parametrizations.weight.original'  # LoReFT's R before its QR makes the rows orthonormal


def _reft(model_dir: str, **settings):
    return prepare_model(AutoModelForCausalLM.from_pretrained(model_dir), 'reft', TunerArguments(**settings))


def _assert_orthonormal_rows(model) -> None:
    for layer in model.model.layers:
        weight = layer.reft_intervention.proj.weight
        torch.testing.assert_close(weight @ weight.T, torch.eye(weight.shape[0]), atol=1e-5, rtol=0)


def test_loreft_starts_silent_trains_alone_saves_only_itself_and_reloads(qwen2_dir, tmp_path):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    model = _reft(qwen2_dir, reft_rank=2)
    # W = R and b = 0 at first, so W h + b - R h = 0: the logits are the base model's, exactly.
    assert torch.equal(_logits(model), base_logits)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f'model.layers.{i}.reft_intervention.{name}'
        for i in range(2) for name in (R_WEIGHT, 'learned_source.weight', 'learned_source.bias')}
    trained = _train_and_check(model, base_logits)  # exactly the interventions change, and the logits with them
    _assert_orthonormal_rows(model)  # R moved and stayed on the manifold
    # A KV cache gives each new token what a full forward gives its position: every position is edited.
    with torch.no_grad():
        cached = model.generate(IDS, max_new_tokens=4, do_sample=False)
        uncached = model.generate(IDS, max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    model.save_pretrained(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['adapter_config.json', 'model.safetensors']
    reloaded = Swift.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), str(tmp_path))
    torch.testing.assert_close(_logits(reloaded), trained)
    assert not any(p.requires_grad for p in reloaded.parameters())
    with pytest.raises(SwiftError, match='reft checkpoints cannot be merged'):
        merge_adapters(reloaded)
    with pytest.raises(SwiftError, match='one ReFT checkpoint per model'):  # its hooks would stack
        Swift.from_pretrained(reloaded, str(tmp_path))


def test_noreft_on_chosen_layers_through_a_layer_key(qwen2_dir):
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    model = _reft(qwen2_dir, reft_intervention_type='NoreftIntervention', reft_layers=[1], reft_rank=3,
                  reft_layer_key='model.layers', reft_args={'add_bias': True, 'dropout': 0.1})
    assert not hasattr(model.model.layers[0], 'reft_intervention')
    assert torch.equal(_logits(model), base_logits)  # W1 = W2 and b = W2's bias: silent at first
    assert model.swift_adapter_config['reft_args'] == {'dropout': 0.1, 'act_fn': 'linear', 'add_bias': True}
    _train_and_check(model, base_logits)


@pytest.mark.parametrize('settings, flag', [
    ({'reft_layers': [2]}, '--reft_layers'),
    ({'reft_layer_key': 'model.norm'}, '--reft_layer_key'),
    ({'reft_args': {'drop': 0.1}}, '--reft_args'),
    ({'reft_args': {'add_bias': True}}, '--reft_args add_bias'),
    ({'reft_intervention_type': 'ConsreftIntervention'}, '--reft_intervention_type'),
    ({'reft_rank': 65}, '--reft_rank must be between 1 and the hidden size 64'),
])
def test_bad_settings_name_their_flag(settings, flag, qwen2_dir):
    with pytest.raises(SwiftError, match=flag):
        _reft(qwen2_dir, **settings)


def test_reft_args_must_be_a_json_object():
    with pytest.raises(SwiftError, match='--reft_args must be a JSON object'):
        TrainArguments(model='m', dataset=['d'], train_type='reft', reft_args='{dropout: 1}')


def test_reft_flag_trains_infers_resumes_and_refuses_to_merge(qwen2_dir, tmp_path):
    flags = ('--train_type', 'reft', '--reft_rank', '2', '--reft_layers', '0', '1', '--gradient_checkpointing', 'true')
    ckpt = _sft(tmp_path, qwen2_dir, *flags, '--save_steps', '2')
    assert json.load(open(f'{ckpt}/adapter_config.json'))['swift_type'] == 'reft'
    assert _answer(tmp_path, ckpt)
    _assert_resume_repeats_step_3(tmp_path, qwen2_dir, ckpt, *flags)
    with pytest.raises(SwiftError, match='reft checkpoints cannot be merged'):
        export_main(['--adapters', ckpt, '--merge_lora', 'true'])
