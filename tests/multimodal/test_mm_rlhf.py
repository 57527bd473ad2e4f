"""swift rlhf on image rows with the tiny Qwen2.5-VL: DPO (and the reference-free pair losses) and KTO see the
pictures in every forward, GRPO generates and scores with them; engines on other packages refuse them."""
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from swift.dataset.errors import RowError
from swift.dataset.preprocess import normalize_row
from swift.infer.loop_engine import LoopEngine
from swift.model import get_model_tokenizer
from swift.pipelines.rlhf import rlhf_main
from swift.pipelines.train import sft_main
from swift.protocol import InferRequest, RequestConfig
from swift.rlhf.media import preference_collator
from swift.template import get_template
from swift.tuners.multimodal import set_vision_checkpointing
from swift.utils import SwiftError

from .helpers import save_squares, write_jsonl

QUESTION = '<image>What colour is the square?'
REFUSAL = 'I cannot see it'
COMMON = ['--train_type', 'lora', '--target_modules', 'all-linear', '--split_dataset_ratio', '0',
          '--logging_steps', '1', '--save_strategy', 'no', '--report_to', 'none', '--dataloader_num_workers', '0']


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    """Squares in pics/ and the preference, KTO and GRPO datasets about them (paths relative to the files)."""
    folder = tmp_path_factory.mktemp('mm_rlhf')
    names = {colour: f'pics/{name}' for colour, name in save_squares(str(folder / 'pics')).items()}
    question = {'role': 'user', 'content': QUESTION}
    pairs = [{'messages': [question, {'role': 'assistant', 'content': colour}], 'rejected_response': REFUSAL,
              'images': [name]} for colour, name in names.items()] * 2
    write_jsonl(str(folder / 'pairs.jsonl'), pairs)
    kto = [{'messages': [question, {'role': 'assistant', 'content': answer}], 'label': answer != REFUSAL,
            'images': [name]} for colour, name in names.items() for answer in (colour, REFUSAL)]
    write_jsonl(str(folder / 'kto.jsonl'), kto)
    write_jsonl(str(folder / 'sft.jsonl'), [{'messages': [question, {'role': 'assistant', 'content': colour}],
                                            'images': [name]} for colour, name in names.items()])
    # seed 000's layout: a question about an image, the reference answer in `solution`
    write_jsonl(str(folder / 'grpo.jsonl'), [{'messages': [question], 'solution': colour, 'images': [name]}
                                             for colour, name in names.items()])
    return str(folder)


@pytest.fixture(scope='module')
def vl_template(qwen2_5_vl_dir):
    model, processor = get_model_tokenizer(qwen2_5_vl_dir)
    return model, get_template('qwen2_5_vl', processor)


def _pair_row(data_dir: str, colour: str, **extra) -> dict:
    return {'messages': [{'role': 'user', 'content': QUESTION}, {'role': 'assistant', 'content': colour}],
            'rejected_response': REFUSAL, 'images': [os.path.join(data_dir, 'pics', f'{colour}.png')], **extra}


def test_pair_batches_carry_each_sides_pixels_and_the_model_reads_them(vl_template, data_dir):
    model, template = vl_template
    collate = preference_collator(template, template.tokenizer.pad_token_id)
    red, blue = template.encode_pair(_pair_row(data_dir, 'red')), template.encode_pair(_pair_row(data_dir, 'blue'))
    batch = collate([red])
    # chosen then rejected, both after the same picture: the pixels twice, the answers masked
    assert torch.equal(batch['image_grid_thw'], torch.as_tensor(red['image_grid_thw']).repeat(2, 1))
    assert batch['pixel_values'].shape[0] == 2 * len(red['pixel_values'])
    pads = sum(1 for token in red['prompt_ids'] if token in template.token_types)
    assert pads and int((batch['mm_token_type_ids'] == 1).sum()) == 2 * pads
    answer = batch['input_ids'][0][batch['completion_mask'][0].bool()].tolist()
    assert answer == red['chosen_ids'] and not set(answer) & template.vision_token_ids
    inputs = {k: v for k, v in batch.items() if k != 'completion_mask'}
    with torch.no_grad():
        red_logits = model(**inputs).logits
        blue_logits = model(**{**inputs, 'pixel_values': collate([blue])['pixel_values']}).logits
    assert not torch.allclose(red_logits, blue_logits)  # the picture reaches the language model


def test_rejected_images_give_the_rejected_answer_its_own_prompt(vl_template, data_dir):
    _, template = vl_template
    row = _pair_row(data_dir, 'red', rejected_response=None,
                    rejected_images=[os.path.join(data_dir, 'pics', 'blue.png')])
    pair = template.encode_pair(row)
    assert pair['chosen_ids'] == pair['rejected_ids']  # ms-swift: the same answer about another picture
    assert pair['rejected_prompt_ids'] is not None and 'rejected_pixel_values' in pair
    batch = preference_collator(template, template.tokenizer.pad_token_id)([pair])
    red = torch.as_tensor(pair['pixel_values'])
    assert torch.equal(batch['pixel_values'][:len(red)], red)
    assert torch.equal(batch['pixel_values'][len(red):], torch.as_tensor(pair['rejected_pixel_values']))


def test_an_image_inside_the_answer_is_refused(vl_template, data_dir):
    _, template = vl_template
    row = _pair_row(data_dir, 'red')
    row['messages'] = [{'role': 'user', 'content': 'Draw it.'}, {'role': 'assistant', 'content': '<image>'}]
    row['rejected_response'] = 'No. <image>'
    with pytest.raises(SwiftError, match='in the prompt only'):
        template.encode_pair(row)


def _losses(result: dict) -> list[float]:
    return [record['loss'] for record in result['log_history'] if 'loss' in record]


def test_dpo_on_image_pairs_learns_with_the_reference_seeing_the_images(qwen2_5_vl_dir, data_dir, tmp_path):
    result = rlhf_main(['--rlhf_type', 'dpo', '--model', qwen2_5_vl_dir, '--dataset',
                        os.path.join(data_dir, 'pairs.jsonl'), '--learning_rate', '1e-2', '--max_steps', '3',
                        '--per_device_train_batch_size', '2', '--output_dir', str(tmp_path), *COMMON])
    first = result['log_history'][0]
    # step 1: the adapter is zero, so the policy equals the reference only if both forwards read the same pixels
    assert first['rewards/margins'] == 0 and first['rewards/chosen'] == 0
    losses = _losses(result)
    assert losses[-1] < losses[0] - 0.2, losses


@pytest.mark.parametrize('rlhf_type', ['orpo', 'kto'])
def test_orpo_and_kto_on_image_rows_lower_their_loss(qwen2_5_vl_dir, data_dir, tmp_path, rlhf_type):
    dataset = 'kto.jsonl' if rlhf_type == 'kto' else 'pairs.jsonl'
    result = rlhf_main(['--rlhf_type', rlhf_type, '--model', qwen2_5_vl_dir, '--dataset',
                        os.path.join(data_dir, dataset), '--learning_rate', '1e-2', '--max_steps', '3',
                        '--per_device_train_batch_size', '2', '--output_dir', str(tmp_path), *COMMON])
    losses = _losses(result)
    assert all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_precomputed_reference_log_probs_are_refused_for_images(qwen2_5_vl_dir, data_dir, tmp_path):
    with pytest.raises(SwiftError, match='precompute_ref_log_probs'):
        rlhf_main(['--rlhf_type', 'dpo', '--model', qwen2_5_vl_dir, '--dataset',
                   os.path.join(data_dir, 'pairs.jsonl'), '--precompute_ref_log_probs', 'true', '--max_steps', '1',
                   '--output_dir', str(tmp_path), *COMMON])


PLUGIN = '''
from swift.rlhf.rewards import register_reward


@register_reward('low_ids')
def low_ids(prompts, completions, completion_ids, **kwargs):
    """Share of low token ids: a reward that varies between a tiny random model's samples."""
    return [sum(token < 400 for token in ids) / max(len(ids), 1) for ids in completion_ids]
'''


def test_grpo_generates_and_scores_with_the_images(qwen2_5_vl_dir, data_dir, tmp_path, monkeypatch):
    """Seed 000's GRPO command (model, dataset and step counts changed; a toy reward beside accuracy/format). The
    vision tower is watched (and still runs): generation, the reference forward and the loss forward each read the
    prompt's picture, once per completion."""
    seen = []
    vision_forward = Qwen2_5_VisionTransformerPretrainedModel.forward

    def watched(self, hidden_states, grid_thw, **kwargs):
        seen.append((torch.is_grad_enabled(), grid_thw.tolist()))
        return vision_forward(self, hidden_states, grid_thw, **kwargs)
    monkeypatch.setattr(Qwen2_5_VisionTransformerPretrainedModel, 'forward', watched)
    plugin, out = tmp_path / 'toy_rewards.py', tmp_path / 'out'
    plugin.write_text(PLUGIN)
    result = rlhf_main(['--rlhf_type', 'grpo', '--model', qwen2_5_vl_dir, '--dataset',
                        os.path.join(data_dir, 'grpo.jsonl'), '--external_plugins', str(plugin),
                        '--reward_funcs', 'accuracy', 'format', 'low_ids', '--max_completion_length', '4',
                        '--num_generations', '4', '--per_device_train_batch_size', '4', '--temperature', '1.0',
                        '--learning_rate', '2e-2', '--max_steps', '1', '--beta', '0.04', '--save_steps', '1',
                        '--output_dir', str(out), *COMMON[:8], '--report_to', 'none', '--dataloader_num_workers', '0'])
    logs = [record for record in result['log_history'] if 'reward' in record]
    # step 1: the reference (adapter off) and the policy read the same pictures, so they agree exactly
    assert logs[0]['kl'] == 0
    assert all(torch.isfinite(torch.tensor([r['loss'], r['reward']])).all() for r in logs)
    one_picture = [[1, *grid] for grid in [seen[0][1][0][1:]]] * 4
    assert seen and all(grids == one_picture for _, grids in seen)  # 4 completions of one prompt, its picture each
    # one step: generation (its prefill) and the reference without gradient, the loss's forward with it
    assert [grad for grad, _ in seen].count(True) == 1 and [grad for grad, _ in seen].count(False) >= 2
    adapter = load_file(os.path.join(result['last_model_checkpoint'], 'adapter_model.safetensors'))
    assert any(value.abs().sum() > 0 for key, value in adapter.items() if 'lora_B' in key)  # the adapter learnt
    assert not [key for key in adapter if 'visual' in key]  # all-linear: the language model only


class _BackendWithoutMedia(LoopEngine):
    """A LoopEngine whose backend (vLLM's, SGLang's, LMDeploy's) is never reached: encoding refuses first."""

    def generate(self, prompts, config, adapter=None, on_text=None, cancelled=None):
        raise AssertionError('the request should have been refused before generation')

    def adapter_names(self):
        return []

    def max_model_len(self):
        return None

    def _shutdown(self):
        pass


def test_engines_on_other_packages_refuse_images_in_one_line(vl_template, data_dir):
    _, template = vl_template
    engine = _BackendWithoutMedia(template, 4, 'tiny', 'swift-test-loop')
    try:
        with pytest.raises(SwiftError, match='--infer_backend _backendwithoutmedia does not take images'):
            engine.infer([InferRequest([{'role': 'user', 'content': QUESTION}],
                                       images=[os.path.join(data_dir, 'pics', 'red.png')])], RequestConfig(max_tokens=2))
        assert engine.encode(InferRequest([{'role': 'user', 'content': 'hi'}]))  # text passes
    finally:
        engine.close()


def test_rejected_messages_and_images_load_as_ms_swift_writes_them(data_dir):
    rejected = [{'role': 'user', 'content': QUESTION}, {'role': 'assistant', 'content': 'blue'}]
    row = normalize_row({'messages': rejected[:1] + [{'role': 'assistant', 'content': 'red'}],
                         'images': ['pics/red.png'], 'rejected_messages': rejected,
                         'rejected_images': ['pics/blue.png']}, base_dir=data_dir)
    assert row['rejected_messages'][-1]['content'] == 'blue'
    assert row['rejected_images'] == [os.path.join(data_dir, 'pics', 'blue.png')]  # read from the file's folder
    with pytest.raises(RowError, match=r"rejected side: images\[0\] 'pics/nothing.png': no such file"):
        normalize_row({**row, 'images': ['pics/red.png'], 'rejected_images': ['pics/nothing.png']},
                      base_dir=data_dir)


def test_vit_lr_and_aligner_lr_give_each_part_its_own_learning_rate(qwen2_5_vl_dir, data_dir, tmp_path):
    """Full training of every part, the vision tower at --vit_lr 0: its weights stay, the aligner's and the
    language model's move."""
    result = sft_main(['--model', qwen2_5_vl_dir, '--dataset', os.path.join(data_dir, 'sft.jsonl'), '--train_type',
                       'full', '--optimizer', 'multimodal', '--freeze_vit', 'false', '--freeze_aligner', 'false', '--vit_lr', '0',
                       '--aligner_lr', '1e-2', '--learning_rate', '1e-3', '--max_steps', '1', '--save_steps', '1',
                       '--split_dataset_ratio', '0', '--report_to', 'none', '--output_dir', str(tmp_path)])
    before, after = (dict(AutoModelForImageTextToText.from_pretrained(folder).named_parameters())
                     for folder in (qwen2_5_vl_dir, result['last_model_checkpoint']))
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    vit = {key for key in before if 'visual.' in key and '.merger.' not in key}
    assert vit and not moved & vit
    assert any('.merger.' in key for key in moved) and any('language_model' in key for key in moved)


def test_vit_gradient_checkpointing_sets_the_vision_layers_apart_from_the_llm(qwen2_5_vl_dir, data_dir, vl_template):
    model, template = vl_template
    vision = [m for m in model.model.visual.modules() if hasattr(m, 'gradient_checkpointing')]
    text = [m for m in model.model.language_model.modules() if hasattr(m, 'gradient_checkpointing')]
    try:
        model.gradient_checkpointing_enable()
        set_vision_checkpointing(model, False)  # --gradient_checkpointing true --vit_gradient_checkpointing false
        assert vision and not any(m.gradient_checkpointing for m in vision)
        assert all(m.gradient_checkpointing for m in text)
        model.gradient_checkpointing_disable()
        set_vision_checkpointing(model, True)  # the vision tower alone checkpoints, and still trains
        assert all(m.gradient_checkpointing for m in vision) and not any(m.gradient_checkpointing for m in text)
        batch = preference_collator(template, template.tokenizer.pad_token_id)([
            template.encode_pair(_pair_row(data_dir, 'red'))])
        model.train()
        inputs = {k: v for k, v in batch.items() if k != 'completion_mask'}
        model(**inputs).logits.float().mean().backward()
        assert model.model.visual.blocks[0].attn.qkv.weight.grad is not None
    finally:
        set_vision_checkpointing(model, False)
        model.gradient_checkpointing_disable()
        model.zero_grad(set_to_none=True)
        model.eval()
