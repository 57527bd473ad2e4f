"""--router_aux_loss_coef and --target_parameters on a tiny mixture-of-experts model (fused expert weights)."""
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

from swift.pipelines.train import use_router_aux_loss
from swift.tuners import TunerArguments, prepare_model
from swift.utils import SwiftError


def _moe() -> Qwen2MoeForCausalLM:
    torch.manual_seed(0)
    config = Qwen2MoeConfig(vocab_size=128, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                            shared_expert_intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                            num_key_value_heads=1, num_experts=4, num_experts_per_tok=2, max_position_embeddings=64)
    return Qwen2MoeForCausalLM(config)


IDS = torch.tensor([[1, 2, 3, 4, 5, 6]])


def test_router_aux_loss_coef_adds_the_weighted_balancing_loss():
    model = _moe()
    plain = model(input_ids=IDS, labels=IDS).loss
    use_router_aux_loss(model, 0.5)
    out = model(input_ids=IDS, labels=IDS)
    assert out.aux_loss is not None
    assert float(out.loss) == pytest.approx(float(plain + 0.5 * out.aux_loss), rel=1e-5)


def test_router_aux_loss_coef_refuses_a_dense_model(qwen2_dir):
    with pytest.raises(SwiftError, match='--router_aux_loss_coef'):
        use_router_aux_loss(AutoModelForCausalLM.from_pretrained(qwen2_dir), 0.1)


def test_target_parameters_puts_lora_on_the_fused_experts():
    settings = TunerArguments(target_modules=['q_proj'], target_parameters=['mlp.experts.gate_up_proj'],
                              lora_dropout=0.0)
    model = prepare_model(_moe(), 'lora', settings)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any('experts' in n and 'lora_A' in n for n in names)
    assert any('q_proj.lora_A' in n for n in names)
    before = model(input_ids=IDS).logits
    for name, param in model.named_parameters():
        if 'experts' in name and 'lora_B' in name:
            torch.nn.init.normal_(param)
    assert not torch.allclose(before, model(input_ids=IDS).logits)  # the expert adapter is in the forward pass


def test_target_parameters_drops_the_lora_dropout_peft_refuses():
    from swift.arguments import TrainArguments, parse_args
    args = parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--target_parameters', 'experts'])
    assert args.lora_dropout == 0.0 and args.target_parameters == ['experts']
