"""--freeze_llm, --freeze_vit and --freeze_aligner on a tiny random Qwen2-VL (no processor needed to check which
parameters train)."""
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2VLConfig, Qwen2VLForConditionalGeneration

from swift.tuners import TunerArguments, prepare_model
from swift.utils import SwiftError

PARTS = {'vit': 'model.visual.blocks.', 'aligner': 'model.visual.merger.', 'llm': 'model.language_model.'}


def _qwen2_vl() -> Qwen2VLForConditionalGeneration:
    torch.manual_seed(0)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, vocab_size=128)
    vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2)
    return Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision))


def _trained_parts(model) -> set[str]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {part for part, prefix in PARTS.items() if any(prefix in n for n in names)}


@pytest.mark.parametrize('flags, parts', [
    ({}, {'llm'}),  # ms-swift's defaults: the vision tower and the aligner are frozen
    ({'freeze_aligner': False}, {'llm', 'aligner'}),
    ({'freeze_vit': False, 'freeze_aligner': False, 'freeze_llm': True}, {'vit', 'aligner'}),
])
def test_freeze_flags_choose_what_trains(flags, parts):
    full = prepare_model(_qwen2_vl(), 'full', TunerArguments(**flags))
    assert _trained_parts(full) == parts
    assert full.lm_head.weight.requires_grad == ('llm' in parts)
    lora = prepare_model(_qwen2_vl(), 'lora', TunerArguments(**flags))
    assert _trained_parts(lora) == parts
    assert all('lora_' in n for n, p in lora.named_parameters() if p.requires_grad)
    assert not any('lm_head.lora' in n for n, _ in lora.named_parameters())  # all-linear leaves the head out


def test_named_target_modules_are_left_alone():
    lora = prepare_model(_qwen2_vl(), 'lora', TunerArguments(target_modules=['qkv', 'q_proj']))
    assert _trained_parts(lora) == {'vit', 'llm'}  # --freeze_vit speaks only for all-linear, as in ms-swift


def test_text_models_keep_the_defaults_and_refuse_the_rest(qwen2_dir):
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'full', TunerArguments())
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(SwiftError, match='--freeze_vit applies to multimodal models'):
        prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora', TunerArguments(freeze_vit=False))


def test_longlora_on_a_multimodal_model_trains_only_the_language_models_norms():
    model = prepare_model(_qwen2_vl(), 'longlora', TunerArguments(lora_rank=4))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert _trained_parts(model) == {'llm'}
    assert any('language_model.norm' in n for n in trained) and any('embed_tokens' in n for n in trained)
    # The vision tower's attention is bidirectional: it keeps full attention while training (S²-Attn is causal).
    pixels = torch.randn(16, 3 * 2 * 14 * 14)  # one 56 x 56 image: a 4 x 4 grid of 14-pixel patches
    grid = torch.tensor([[1, 4, 4]])
    visual = model.base_model.model.model.visual.train()
    trained_features = visual(pixels, grid_thw=grid).pooler_output
    torch.testing.assert_close(trained_features, visual.eval()(pixels, grid_thw=grid).pooler_output)


def test_tuners_of_the_decoder_layers_refuse_the_flags():
    with pytest.raises(SwiftError, match='--freeze_vit: --train_type reft adds to the language model'):
        prepare_model(_qwen2_vl(), 'reft', TunerArguments(freeze_vit=False))
