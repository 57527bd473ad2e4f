"""DPO's shared-prompt forward (swift/rlhf/shared_prompt.py) gives trl's own results: the same per-token outputs
and gradients on a batch of uneven pairs, and the same losses and rewards step by step in a training run."""
import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from swift.llm import rlhf_main
from swift.rlhf import dpo, shared_prompt

from .conftest import PAIRS

OUTPUTS = ('log_probs', 'entropy', 'mean_logits', 'is_top1')


def _pair_batch(vocab: int):
    """Three pairs: prompts of 5, 9 and 3 tokens, answers of uneven lengths, right-padded like trl's collator."""
    gen = torch.Generator().manual_seed(0)
    rows, masks = [], []
    pairs = [(5, 4, 7), (9, 3, 2), (3, 6, 6)]
    for side in (1, 2):
        for prompt, *answers in pairs:
            prompt_ids = torch.randint(3, vocab, (prompt,), generator=torch.Generator().manual_seed(prompt))
            answer = torch.randint(3, vocab, (answers[side - 1],), generator=gen)
            rows.append(torch.cat([prompt_ids, answer]))
            masks.append([0] * prompt + [1] * answers[side - 1])
    width = max(len(r) for r in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        input_ids[i, :len(row)], attention[i, :len(row)] = row, 1
        labels[i, :len(row)] = row.masked_fill(torch.tensor(mask) == 0, -100)
    return input_ids, attention, labels


def _fused_outputs(model_dir: str, share: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=OUTPUTS)
    if share:
        assert shared_prompt.share_prompt_forward(model, OUTPUTS)
    input_ids, attention, labels = _pair_batch(model.config.vocab_size)
    out = model(input_ids=input_ids, attention_mask=attention, labels=labels, use_cache=False, fused_lm_head=True)
    out.log_probs.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_packed_pairs_give_the_plain_rows_outputs_and_gradients(qwen2_dir, monkeypatch):
    calls = []
    packed_forward = shared_prompt._packed_forward
    monkeypatch.setattr(shared_prompt, '_packed_forward', lambda *a: calls.append(1) or packed_forward(*a))
    plain, plain_grads = _fused_outputs(qwen2_dir, share=False)
    shared, shared_grads = _fused_outputs(qwen2_dir, share=True)
    assert calls == [1]
    assert torch.equal(plain.label_mask, shared.label_mask)
    for name in ('log_probs', 'entropy', 'mean_logits'):
        torch.testing.assert_close(getattr(shared, name), getattr(plain, name), rtol=1e-4, atol=1e-5)
    assert torch.equal(plain.is_top1 & plain.label_mask, shared.is_top1 & shared.label_mask)
    assert plain_grads.keys() == shared_grads.keys() and len(plain_grads) > 10
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_batches_it_cannot_pack_take_trls_path(qwen2_dir):
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    input_ids, attention, labels = _pair_batch(model.config.vocab_size)
    assert shared_prompt.PackedPairs.of(input_ids, attention, labels) is not None
    assert shared_prompt.PackedPairs.of(input_ids[:5], attention[:5], labels[:5]) is None  # odd: not pairs
    other_prompts = input_ids.clone()
    other_prompts[3:, 0] += 1
    assert shared_prompt.PackedPairs.of(other_prompts, attention, labels) is None  # no shared prompt
    assert shared_prompt.PackedPairs.of(input_ids, attention.flip(-1), labels) is None  # left padding


def _dpo_run(model_dir, out_dir, *flags) -> list[dict]:
    result = rlhf_main(['--rlhf_type', 'dpo', '--model', model_dir, '--dataset', PAIRS, '--split_dataset_ratio', '0',
                        '--report_to', 'none', '--dataloader_num_workers', '0', '--per_device_train_batch_size', '4',
                        '--max_steps', '2', '--logging_steps', '1', '--learning_rate', '5e-4', '--save_strategy',
                        'no', '--seed', '7', '--output_dir', str(out_dir), *flags])
    return [log for log in result['log_history'] if 'loss' in log]


@pytest.mark.parametrize('flags', [('--train_type', 'lora'),
                                   ('--train_type', 'full', '--precompute_ref_log_probs', 'true')],
                         ids=['lora', 'full-precomputed'])
def test_dpo_run_logs_the_plain_paths_losses_and_rewards(qwen2_dir, tmp_path, monkeypatch, flags):
    calls = []
    packed_forward = shared_prompt._packed_forward
    monkeypatch.setattr(shared_prompt, '_packed_forward', lambda *a: calls.append(1) or packed_forward(*a))
    shared = _dpo_run(qwen2_dir, tmp_path / 'shared', *flags)
    # LoRA: the policy and the reference each step; precomputed: the policy each step, the 10 reference batches once
    assert len(calls) == (4 if 'lora' in flags else 12)
    monkeypatch.setattr(dpo, 'share_prompt_forward', lambda *args: False)
    plain = _dpo_run(qwen2_dir, tmp_path / 'plain', *flags)
    assert len(shared) == len(plain) == 2
    for ours, theirs in zip(shared, plain):
        for key in ('loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen',
                    'logps/rejected', 'entropy', 'logits/chosen', 'mean_token_accuracy', 'grad_norm'):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-5), key
    assert shared[-1]['rewards/margins'] != pytest.approx(shared[0]['rewards/margins'], abs=1e-6)  # it trained
