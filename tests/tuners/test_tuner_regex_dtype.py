"""--target_regex, --freeze_parameters_regex / --trainable_parameters_regex, --lora_dtype, and the BOFT and VeRA
extras reach peft and the freeze step."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from swift.arguments import TrainArguments, parse_args
from swift.tuners import TunerArguments, prepare_model
from swift.utils import SwiftError


def _model(qwen2_dir):
    return AutoModelForCausalLM.from_pretrained(qwen2_dir)


def test_target_regex_adapts_only_the_modules_it_matches(qwen2_dir):
    model = prepare_model(_model(qwen2_dir), 'lora', TunerArguments(target_regex=r'.*\.(q_proj|v_proj)$'))
    adapted = {n.split('.lora_')[0].rsplit('.', 1)[-1] for n, _ in model.named_parameters() if 'lora_A' in n}
    assert adapted == {'q_proj', 'v_proj'}


def test_freeze_then_trainable_regex_in_full_training(qwen2_dir):
    settings = TunerArguments(freeze_parameters_regex=r'^model\.', trainable_parameters_regex=r'layers\.0\.mlp')
    model = prepare_model(_model(qwen2_dir), 'full', settings)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all('layers.0.mlp' in n or not n.startswith('model.') for n in trainable)
    assert any('layers.0.mlp' in n for n in trainable)
    assert not any('self_attn' in n for n in trainable)


def test_lora_dtype_casts_only_the_adapter(qwen2_dir):
    model = prepare_model(_model(qwen2_dir), 'lora', TunerArguments(lora_dtype='bfloat16'))
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if 'lora_' in n)
    assert all(d == torch.float32 for n, d in dtypes.items() if 'lora_' not in n)
    ids = torch.tensor([[1, 7, 9, 40]])
    model(input_ids=ids, labels=ids).loss.backward()  # peft casts the input to the adapter's dtype


def test_boft_block_num_and_dropout_reach_peft(qwen2_dir):
    model = prepare_model(_model(qwen2_dir), 'boft', TunerArguments(boft_block_num=2, boft_dropout=0.1))
    config = model.peft_config['default']
    assert (config.boft_block_num, config.boft_block_size, config.boft_dropout) == (2, 0, 0.1)


def test_vera_extras_reach_peft(qwen2_dir):
    settings = TunerArguments(vera_rank=16, vera_projection_prng_key=7, vera_dropout=0.2, vera_d_initial=0.3)
    model = prepare_model(_model(qwen2_dir), 'vera', settings)
    config = model.peft_config['default']
    assert (config.projection_prng_key, config.vera_dropout, config.d_initial) == (7, 0.2, 0.3)
    d = next(p for n, p in model.named_parameters() if n.endswith('vera_lambda_d.default'))
    assert torch.allclose(d, torch.full_like(d, 0.3))


@pytest.mark.parametrize('flag', ['--target_regex', '--freeze_parameters_regex', '--trainable_parameters_regex'])
def test_a_bad_regex_is_one_line(flag):
    with pytest.raises(SwiftError, match=flag):
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--train_type', 'full', flag, '(x'])
