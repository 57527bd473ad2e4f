"""--freeze_llm, --freeze_vit and --freeze_aligner on a tiny random Qwen2-VL (no processor needed to check which
parameters train)."""
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2VLConfig, Qwen2VLForConditionalGeneration

from swift.tuners import TunerSettings, prepare_model
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
    full = prepare_model(_qwen2_vl(), 'full', TunerSettings(**flags))
    assert _trained_parts(full) == parts
    assert full.lm_head.weight.requires_grad == ('llm' in parts)
    lora = prepare_model(_qwen2_vl(), 'lora', TunerSettings(**flags))
    assert _trained_parts(lora) == parts
    assert all('lora_' in n for n, p in lora.named_parameters() if p.requires_grad)
    assert not any('lm_head.lora' in n for n, _ in lora.named_parameters())  # all-linear leaves the head out


def test_named_target_modules_are_left_alone():
    lora = prepare_model(_qwen2_vl(), 'lora', TunerSettings(target_modules=['qkv', 'q_proj']))
    assert _trained_parts(lora) == {'vit', 'llm'}  # --freeze_vit speaks only for all-linear, as in ms-swift


def test_text_models_keep_the_defaults_and_refuse_the_rest(qwen2_dir):
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'full', TunerSettings())
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(SwiftError, match='--freeze_vit applies to multimodal models'):
        prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora', TunerSettings(freeze_vit=False))
