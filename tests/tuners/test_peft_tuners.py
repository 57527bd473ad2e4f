"""Each adapter family: only its parameters train, the checkpoint reloads to the same logits, merges match."""
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from swift.llm import infer_main, sft_main
from swift.tuners import TunerArguments, prepare_model

TUNERS = ['lora', 'vera', 'boft', 'fourierft', 'bone']
SETTINGS = TunerArguments(lora_rank=4, vera_rank=16, fourier_n_frequency=64, fourier_scaling=10.0,
                          lora_dropout=0.0)


def _train_a_few_steps(model, steps: int = 3) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.tensor([[1, 7, 9, 40, 22, 13, 5, 60]])
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize('train_type', TUNERS)
def test_only_the_adapter_trains_and_reloads_and_merges(train_type, qwen2_dir, tmp_path):
    torch.manual_seed(0)
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), train_type, SETTINGS)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train_a_few_steps(model)
    model.eval()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, f'{name}: trainable={param.requires_grad} changed={changed}'
    assert any(p.requires_grad for p in model.parameters())

    ids = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        trained = model(ids).logits
    model.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, trained, atol=1e-5, rtol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(qwen2_dir)(ids).logits
        merged = reloaded.merge_and_unload()(ids).logits
    assert not torch.allclose(trained, base, atol=1e-4)  # the adapter does something
    torch.testing.assert_close(merged, trained, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('train_type', ['vera', 'boft', 'fourierft', 'bone'])
def test_train_type_flag_trains_and_infers(train_type, qwen2_dir, tmp_path):
    data = tmp_path / 'rows.jsonl'
    data.write_text('{"query": "hi", "response": "hello there"}\n' * 8)
    sft_main(['--model', qwen2_dir, '--dataset', str(data), '--train_type', train_type, '--max_steps', '2',
              '--split_dataset_ratio', '0', '--fourier_n_frequency', '64', '--vera_rank', '16',
              '--output_dir', str(tmp_path / 'out')])
    ckpt = next((tmp_path / 'out').glob('v*/checkpoint-2'))
    answers = infer_main(['--adapters', str(ckpt), '--max_new_tokens', '3', '--val_dataset', str(data) + '#1'])
    assert len(answers) == 1 and isinstance(answers[0]['response'], str)


def test_partial_full_training_freezes_what_it_is_told(qwen2_dir):
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    settings = TunerArguments(freeze_parameters=['model.layers.0.'], freeze_parameters_ratio=0.3,
                             trainable_parameters=[r'model\.layers\.0\.mlp\..*'])
    prepare_model(model, 'full', settings)
    names = [n for n, _ in model.named_parameters()]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'model.embed_tokens.weight' not in trainable  # the bottom 30% of the parameter count
    assert not any(n.startswith('model.layers.0.self_attn') for n in trainable)  # frozen by prefix
    assert any(n.startswith('model.layers.0.mlp') for n in trainable)  # re-enabled by the regex
    assert 'model.layers.1.mlp.down_proj.weight' in trainable and 'model.norm.weight' in trainable
    assert len(trainable) < len(names)


def test_loraplus_gives_b_matrices_a_larger_learning_rate(qwen2_dir):
    from swift.tuners import loraplus_optimizer
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora', TunerArguments())
    optimizer = loraplus_optimizer(model, 16, 1e-4, 0.0, (0.9, 0.999), 1e-8)
    by_param = {id(p): group['lr'] for group in optimizer.param_groups for p in group['params']}
    for name, param in model.named_parameters():
        if 'lora_A' in name:
            assert by_param[id(param)] == pytest.approx(1e-4)
        elif 'lora_B' in name:
            assert by_param[id(param)] == pytest.approx(16e-4)


def test_loraplus_and_freezing_flags_train(qwen2_dir, tmp_path):
    data = tmp_path / 'rows.jsonl'
    data.write_text('{"query": "hi", "response": "hello there"}\n' * 8)
    for flags in (['--lorap_lr_ratio', '16'], ['--train_type', 'full', '--freeze_parameters_ratio', '0.5']):
        out = tmp_path / flags[1]
        sft_main(['--model', qwen2_dir, '--dataset', str(data), '--max_steps', '2', '--split_dataset_ratio', '0',
                  '--output_dir', str(out), *flags])
        assert next(out.glob('v*/checkpoint-2'))
