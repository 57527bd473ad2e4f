"""LoRA-GA: adapters start from gradient estimates, and checkpoints fit the original base."""
import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from swift.arguments import TrainArguments
from swift.rlhf.arguments import RLHFArguments
from swift.llm import sft_main
from swift.tuners import TunerArguments, prepare_model
from swift.utils import SwiftError

from .test_block_tuners import _answer, _logits, _sft, _sft_argv
from .test_peft_tuners import _train_a_few_steps

BATCH = torch.tensor([[1, 7, 9, 40, 22, 13, 5, 60], [4, 8, 15, 16, 23, 42, 2, 3]])


def _gradient_step(model) -> None:
    model(input_ids=BATCH, labels=BATCH).loss.backward()


def test_lora_ga_starts_from_the_gradient_and_saves_a_lora_for_the_original_base(qwen2_dir, tmp_path):
    torch.manual_seed(0)
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(qwen2_dir))
    model = prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora',
                          TunerArguments(lora_rank=4, lora_dropout=0.0, init_weights='lora-ga'),
                          lora_ga_step=_gradient_step)
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if 'lora_B' in n)  # not LoRA's B = 0
    torch.testing.assert_close(_logits(model), base_logits, atol=1e-4, rtol=1e-4)  # base - BA + BA
    model.train()
    _train_a_few_steps(model)
    trained = _logits(model)
    assert not torch.allclose(trained, base_logits, atol=1e-4)
    model.save_pretrained(str(tmp_path))
    assert json.load(open(tmp_path / 'adapter_config.json'))['r'] == 8  # converted: rank 2r, plain LoRA
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(qwen2_dir), str(tmp_path))
    torch.testing.assert_close(_logits(reloaded), trained, atol=1e-4, rtol=1e-4)


def test_lora_ga_needs_batches_and_checks_its_flags(qwen2_dir):
    with pytest.raises(SwiftError, match='lora-ga needs training batches'):
        prepare_model(AutoModelForCausalLM.from_pretrained(qwen2_dir), 'lora', TunerArguments(init_weights='lora-ga'))
    with pytest.raises(SwiftError, match='--lora_ga_iters must be positive'):
        TrainArguments(model='m', dataset=['d'], init_weights='lora-ga', lora_ga_iters=0)
    with pytest.raises(SwiftError, match='cannot be resumed'):
        TrainArguments(model='m', dataset=['d'], init_weights='lora-ga', resume_from_checkpoint='ckpt')


def test_lora_ga_flag_trains_and_its_checkpoint_loads_on_the_base(qwen2_dir, tmp_path):
    ckpt = _sft(tmp_path, qwen2_dir, '--init_weights', 'lora-ga', '--lora_rank', '4', '--lora_ga_batch_size', '2',
                '--lora_ga_iters', '2', '--lora_ga_max_length', '64', '--lora_ga_scale', 'gd')
    config = json.load(open(f'{ckpt}/adapter_config.json'))
    assert config['r'] == 8 and config['init_lora_weights'] is True
    assert _answer(tmp_path, ckpt)


def test_lora_ga_needs_rows_with_an_answer_within_the_cut(qwen2_dir, tmp_path):
    # The chat rows' answers start well after their first 4 tokens: no gradient to start from.
    with pytest.raises(SwiftError, match='no training row has an answer token within its first 4 tokens'):
        sft_main(_sft_argv(tmp_path, qwen2_dir, '--init_weights', 'lora-ga', '--lora_ga_max_length', '4'))
    assert not (tmp_path / 'out').exists()  # refused before the run folder


def test_longlora_and_lora_ga_are_sft_and_pt_tuners(qwen2_dir):
    for flags in ({'train_type': 'longlora'}, {'init_weights': 'lora-ga'}):
        with pytest.raises(SwiftError, match='train with swift sft and swift pt, not swift rlhf'):
            RLHFArguments(model=qwen2_dir, dataset=['d'], rlhf_type='dpo', **flags)
    with pytest.raises(SwiftError, match='drop --packing and --padding_free'):
        TrainArguments(model=qwen2_dir, dataset=['d'], train_type='longlora', packing=True)
