"""LongLoRA: S²-Attn against a hand computation, what trains, the CLI run, and the merge."""
import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from swift.tuners import TunerArguments, prepare_model
from swift.tuners.longlora import s2_attention

from swift.llm import export_main

from .test_block_tuners import _assert_resume_repeats_step_3, _logits, _sft
from .test_peft_tuners import _train_a_few_steps


class _Attention(torch.nn.Module):
    """What the attention function reads from the module."""

    def __init__(self, num_key_value_groups: int):
        super().__init__()
        self.num_key_value_groups, self.is_causal = num_key_value_groups, True


def _by_hand(query, key, value, group: int) -> torch.Tensor:
    """Each head on its own; the second half of the heads rolled back by half a group; each group attends alone,
    causally by original position (the group that wraps around never sees the future)."""
    batch, heads, length, dim = query.shape
    key, value = (x.repeat_interleave(heads // x.shape[1], dim=1) for x in (key, value))
    out = torch.empty(batch, length, heads, dim)
    for h in range(heads):
        shift = group // 2 if h >= heads // 2 else 0
        positions = torch.arange(length).roll(-shift)
        q, k, v = (x[:, h].roll(-shift, dims=1) for x in (query, key, value))
        for start in range(0, length, group):
            span = slice(start, start + group)
            scores = q[:, span] @ k[:, span].transpose(-1, -2) / dim ** 0.5
            future = positions[span][None, :] > positions[span][:, None]
            attended = scores.masked_fill(future, float('-inf')).softmax(-1) @ v[:, span]
            out[:, positions[span], h] = attended
    return out


@pytest.mark.parametrize('kv_heads', [2, 1])  # GQA with an even and an odd number of kv heads
def test_s2_attention_equals_the_hand_computation(kv_heads):
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 4, 16, 8), torch.randn(2, kv_heads, 16, 8), torch.randn(2, kv_heads, 16, 8)
    module = _Attention(4 // kv_heads).train()
    s2, _ = s2_attention(module, query, key, value, None)
    torch.testing.assert_close(s2, _by_hand(query, key, value, group=4))
    full, _ = sdpa_attention_forward(module, query, key, value, None)
    assert not torch.allclose(s2, full, atol=1e-3)  # 4 groups: most tokens see less
    # A padding mask (as transformers builds it for sdpa) gives the same result where there is no padding.
    causal = torch.ones(16, 16, dtype=torch.bool).tril().expand(2, 1, 16, 16)
    torch.testing.assert_close(s2_attention(module, query, key, value, causal)[0], s2)
    padded = causal & (torch.arange(16) < 5)  # keys from position 5 on are padding: some groups see nothing
    assert torch.isfinite(s2_attention(module, query, key, value, padded)[0]).all()
    module.eval()
    torch.testing.assert_close(s2_attention(module, query, key, value, None)[0], full)
    module.train()  # a length its groups (of 14 // 4 = 3) do not divide: full attention
    short = [x[:, :, :14] for x in (query, key, value)]
    torch.testing.assert_close(s2_attention(module, *short, None)[0], sdpa_attention_forward(module, *short, None)[0])


def test_longlora_trains_lora_embeddings_and_norms_and_merges(qwen2_dir, tmp_path):
    torch.manual_seed(0)
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'longlora',
                          TunerArguments(lora_rank=4, lora_dropout=0.0))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all('lora_' in n or 'modules_to_save' in n for n in trainable)
    saved = {n.split('.modules_to_save')[0].rpartition('.')[2] for n in trainable if 'modules_to_save' in n}
    assert saved == {'embed_tokens', 'input_layernorm', 'post_attention_layernorm', 'norm'}
    ids = torch.randint(0, 100, (1, 16))
    with torch.no_grad():  # training attends within groups, inference attends to everything
        assert not torch.allclose(model.train()(ids).logits, model.eval()(ids).logits, atol=1e-4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    _train_a_few_steps(model)
    for name, param in model.named_parameters():
        assert (not torch.equal(before[name], param)) == param.requires_grad, name
    trained = _logits(model)
    model.save_pretrained(str(tmp_path))
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), str(tmp_path))
    torch.testing.assert_close(_logits(reloaded), trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(reloaded.merge_and_unload()), trained, atol=1e-4, rtol=1e-4)


def test_longlora_flag_trains_resumes_and_merges(qwen2_dir, tmp_path):
    flags = ('--train_type', 'longlora', '--lora_rank', '4')
    ckpt = _sft(tmp_path, qwen2_dir, *flags, '--save_steps', '2')
    _assert_resume_repeats_step_3(tmp_path, qwen2_dir, ckpt, *flags)
    assert json.load(open(f'{ckpt}/adapter_config.json'))['modules_to_save']
    trained = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), ckpt))
    export_main(['--adapters', ckpt, '--merge_lora', 'true', '--output_dir', str(tmp_path / 'merged')])
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(tmp_path / 'merged')), trained,
                               atol=1e-4, rtol=1e-4)
