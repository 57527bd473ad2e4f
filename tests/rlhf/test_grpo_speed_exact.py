"""GRPO's fast generation (swift/rlhf/grpo_generation.py) samples exactly what trl's plain path samples: the same
greedy and seeded completions, the same per-step training records, and the LoRA's base weights untouched."""
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from swift.llm import rlhf_main
from swift.rlhf import grpo
from swift.rlhf.grpo import GRPOTrainer
from swift.rlhf.grpo_packing import PackedGroups, packed_logps
from swift.rlhf.grpo_generation import (completions_up_to_eos, generate_with_shared_prefill, left_padded, lora_merged,
                                        prompt_groups)
from tests.rlhf.seed import NUMINA, PROMPT_TXT
from tests.rlhf.test_grpo import PLUGIN


@pytest.fixture(scope='module')
def lora_model(qwen2_dir):
    torch.manual_seed(0)  # init_lora_weights False: B is random too, so the merged LoRA changes the logits
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(qwen2_dir, dtype=torch.float32),
                           LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules='all-linear',
                                      init_lora_weights=False))
    return model, AutoTokenizer.from_pretrained(qwen2_dir)


def _plain(model, prompt_ids, pad_id, config):
    input_ids, mask = left_padded(prompt_ids, pad_id)
    with torch.no_grad():
        return model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)[:, input_ids.size(1):]


@pytest.mark.parametrize('do_sample', [False, True])
def test_shared_prefill_and_merged_lora_generate_what_the_plain_path_does(lora_model, do_sample):
    model, tokenizer = lora_model
    # groups of unequal prompts (left padding) and sizes, as trl's sampler lays them out
    prompts = [tokenizer.encode(text) for text in ('What is 1 + 2? Answer in words please', 'Hi', 'Count to ten')]
    prompt_ids = [prompts[0]] * 4 + [prompts[1]] * 4 + [prompts[2]] * 3
    config = GenerationConfig(max_new_tokens=12, do_sample=do_sample, temperature=0.9, top_k=0, top_p=1.0,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.manual_seed(1)
    plain = _plain(model, prompt_ids, tokenizer.pad_token_id, config)
    torch.manual_seed(1)
    with lora_merged(model):
        fast = generate_with_shared_prefill(model, prompt_ids, tokenizer.pad_token_id, config)
    assert torch.equal(fast, plain)
    assert len(set(map(tuple, plain.tolist()))) > 1  # the groups' completions do differ
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())  # exactly restored
    assert not any(getattr(m, 'merged', False) for m in model.modules())


def test_merging_changes_nothing_when_the_adapter_is_disabled_or_unmerged(lora_model):
    model, tokenizer = lora_model
    ids = torch.tensor([tokenizer.encode('What is 1 + 2?')])
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with lora_merged(model):
            merged = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
            with lora_merged(model):  # a disabled adapter is not merged in
                base_merged = model(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-5) and not torch.allclose(base, adapted, atol=1e-3)
    assert torch.equal(base_merged, base)


def test_groups_and_eos_cuts():
    assert prompt_groups([[1, 2], [1, 2], [3], [1, 2]]) == ([[1, 2], [3], [1, 2]], [2, 1, 1])
    assert completions_up_to_eos(torch.tensor([[5, 2, 0, 0], [5, 6, 7, 8]]), [2]) == [[5, 2], [5, 6, 7, 8]]


def _run(qwen2_dir, tmp_path, fast: bool, monkeypatch) -> tuple[list[dict], list[str], int]:
    monkeypatch.setattr(GRPOTrainer, 'fast_path', fast)
    calls = []

    def counted(real):  # the real function, its calls counted: the fast run must take it
        def call(*args, **kwargs):
            calls.append(real.__name__)
            return real(*args, **kwargs)
        return call
    monkeypatch.setattr(grpo, 'generate_with_shared_prefill', counted(generate_with_shared_prefill))
    monkeypatch.setattr(grpo, 'packed_logps', counted(packed_logps))
    plugin = tmp_path / 'my_rewards.py'
    plugin.write_text(PLUGIN)
    out = tmp_path / ('fast' if fast else 'plain')
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_dir, '--external_plugins', str(plugin),
                        '--reward_funcs', 'low_ids', '--dataset', NUMINA, '--system', PROMPT_TXT,
                        '--split_dataset_ratio', '0', '--lora_dropout', '0', '--max_completion_length', '8',
                        '--per_device_train_batch_size', '8', '--num_generations', '4', '--learning_rate', '5e-3',
                        '--temperature', '1.0', '--max_steps', '3', '--logging_steps', '1', '--save_strategy', 'no',
                        '--log_completions', 'true', '--seed', '7', '--report_to', 'none', '--output_dir', str(out)])
    records = [r for r in result['log_history'] if 'loss' in r]
    run_dir = next(out.glob('v0-*'))
    completions = [json.loads(line)['completion'] for line in open(run_dir / 'completions.jsonl')]
    return records, completions, sorted(set((name, calls.count(name)) for name in calls))


def test_training_with_fast_generation_matches_the_plain_path(qwen2_dir, tmp_path, monkeypatch):
    """Three steps on a seed, sampling at temperature 1: the same completions at every step, the same losses,
    rewards, KL and gradient norms (the adapter moves between steps, so the merged LoRA is exercised after updates;
    the reference's and the loss's log-probabilities come from the packed groups, equal up to float rounding)."""
    fast_records, fast_completions, fast_calls = _run(qwen2_dir, tmp_path, True, monkeypatch)
    plain_records, plain_completions, plain_calls = _run(qwen2_dir, tmp_path, False, monkeypatch)
    # each step: one generation, the reference's and the loss's log-probabilities
    assert fast_calls == [('generate_with_shared_prefill', 3), ('packed_logps', 6)] and plain_calls == []
    assert len(fast_completions) == 24 and fast_completions == plain_completions
    assert len(fast_records) == 3
    for fast, plain in zip(fast_records, plain_records):
        for key in ('loss', 'reward', 'kl', 'completions/mean_length', 'grad_norm'):
            assert fast[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    assert any(r['grad_norm'] > 0 for r in fast_records)


def test_packed_groups_score_what_the_plain_rows_do(lora_model):
    """Two groups of unequal prompts (left padding) and completions of unequal lengths (right padding), packed one
    row per group: each completion token's log-probability and entropy are the plain row's, as trl computes them
    (no position ids, temperature applied)."""
    model, tokenizer = lora_model
    prompts = [tokenizer.encode('What is 1 + 2? Answer in words please'), tokenizer.encode('Hi')]
    completions = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [], [15, 16, 17, 18, 19], [20]]
    # the rows interleaved, as trl's shuffle leaves them for the loss's pass
    prompt_ids, prompt_mask = left_padded([prompts[i] for i in (0, 1, 0, 1, 1, 0)], tokenizer.pad_token_id)
    width = max(map(len, completions))
    completion_ids = torch.tensor([c + [tokenizer.pad_token_id] * (width - len(c)) for c in completions])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions])
    input_ids, mask = torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1)
    packed = PackedGroups.of(input_ids, mask, width)
    assert len(packed.groups) == 2 and packed.packed_ids.size(1) < input_ids.size(1) * 3
    temperature = 0.7
    with torch.no_grad():
        logps, entropies = packed_logps(model.get_base_model(), packed, completion_ids, temperature, True)
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, -width - 1:-1] / temperature
    plain = torch.log_softmax(logits, -1)
    expected = plain.gather(-1, completion_ids[..., None]).squeeze(-1) * completion_mask
    expected_entropy = -(plain.exp() * plain).sum(-1) * completion_mask
    assert torch.allclose(logps, expected, atol=1e-5) and torch.allclose(entropies, expected_entropy, atol=1e-5)
    assert (logps[completion_mask == 0] == 0).all() and (logps[completion_mask == 1] < 0).all()
    assert PackedGroups.of(input_ids[::3], mask[::3], width) is None  # no shared prompt: trl's path
    long_ids = torch.cat([prompt_ids, torch.full((6, 60), 5)], 1)  # completions outweigh the prompt: trl's rows
    long_mask = torch.cat([prompt_mask, torch.ones(6, 60, dtype=torch.long)], 1)
    assert PackedGroups.of(long_ids, long_mask, 60) is None
    assert PackedGroups.of(long_ids[:, :-55], long_mask[:, :-55], 5) is not None
