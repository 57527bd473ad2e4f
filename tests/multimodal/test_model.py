"""Qwen2.5-VL's family: detection from config.json, the processor that loads with the model, its parts, and the
3-D positions of packed rows."""
import pickle

import torch

from swift.model import get_model_folder, get_model_tokenizer
from swift.model.models.qwen_vl import packed_rope_index
from swift.tuners.multimodal import frozen_parts
from swift.tuners import TunerArguments

from .helpers import square


def test_detected_from_config_with_media_and_parts(qwen2_5_vl_dir):
    _, processor, meta = get_model_folder(qwen2_5_vl_dir)
    assert (meta.model_type, meta.template, meta.media) == ('qwen2_5_vl', 'qwen2_5_vl', ('image', 'video'))
    assert type(processor).__name__ == 'Qwen2_5_VLProcessor'  # the name it saves under: transformers loads it
    assert processor.pad_token_id == processor.tokenizer.pad_token_id  # tokenizer attributes answer through it
    assert pickle.loads(pickle.dumps(processor)).image_token_id == processor.image_token_id


def test_parts_name_real_modules_and_match_the_freeze_flags(qwen2_5_vl_dir):
    model, _ = get_model_tokenizer(qwen2_5_vl_dir)
    parts, modules = model.model_meta.parts, dict(model.named_modules())
    assert all(name in modules for name in parts.language_model + parts.aligner + parts.vision_tower)
    # --freeze_vit true --freeze_aligner true --freeze_llm false (the defaults) leaves only the language model.
    frozen = frozen_parts(model, TunerArguments())
    for name in parts.vision_tower:
        assert frozen(name + '.blocks.0.attn.qkv')
    for name in parts.aligner:
        assert frozen(name + '.mlp.0')
    assert not frozen('model.language_model.layers.0.self_attn.q_proj')


def test_processor_pixels_equal_the_image_processor(qwen2_5_vl_dir):
    _, processor = get_model_tokenizer(qwen2_5_vl_dir)
    text = processor.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}]}], tokenize=False)
    out = processor(text=[text], images=[square('red')], return_tensors='pt')
    alone = processor.image_processor(square('red'), return_tensors='pt')
    assert torch.equal(out['pixel_values'], alone['pixel_values'])
    assert (out['input_ids'] == processor.image_token_id).sum() == 4


def test_packed_rows_get_each_sequence_own_positions(qwen2_5_vl_dir):
    model, processor = get_model_tokenizer(qwen2_5_vl_dir)
    texts = [processor.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text',
                                                                                            'text': t}]}],
                                           tokenize=False) for t in ('one', 'two words')]
    images = [square('red', 56), square('blue', 84)]
    alone = [processor(text=[t], images=[i], return_tensors='pt') for t, i in zip(texts, images)]
    expected = [model.model.get_rope_index(a['input_ids'], a['mm_token_type_ids'],
                                           image_grid_thw=a['image_grid_thw'])[0] for a in alone]
    packed = packed_rope_index(model.model, torch.cat([a['input_ids'] for a in alone], 1),
                               torch.cat([torch.arange(a['input_ids'].shape[1]) for a in alone])[None],
                               torch.cat([a['mm_token_type_ids'] for a in alone], 1),
                               image_grid_thw=torch.cat([a['image_grid_thw'] for a in alone]))
    assert torch.equal(packed, torch.cat(expected, dim=2))
    assert not torch.equal(expected[1][0], expected[1][1])  # height and width positions differ from time's
