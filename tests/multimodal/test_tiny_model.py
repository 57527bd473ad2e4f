"""The tiny Qwen2.5-VL folder is a real Hugging Face model folder that loads offline."""
import json
import os

import torch
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

from .helpers import square


def test_folder_loads_offline_and_runs_an_image(qwen2_5_vl_dir):
    config = json.load(open(os.path.join(qwen2_5_vl_dir, 'config.json')))
    assert config['model_type'] == 'qwen2_5_vl' and config['vision_config']['depth'] == 2
    tokenizer = AutoTokenizer.from_pretrained(qwen2_5_vl_dir)
    assert '<|image_pad|>' in tokenizer.chat_template
    assert tokenizer.convert_tokens_to_ids('<|image_pad|>') == config['image_token_id']
    pixels = AutoImageProcessor.from_pretrained(qwen2_5_vl_dir)(square('red', 56), return_tensors='pt')
    assert pixels['image_grid_thw'].tolist() == [[1, 4, 4]]  # 56 px = 4 patches of 14; 2x2 merge: 4 tokens
    model = AutoModelForImageTextToText.from_pretrained(qwen2_5_vl_dir)
    input_ids = torch.tensor([[config['vision_start_token_id']] + [config['image_token_id']] * 4
                              + [config['vision_end_token_id']]])
    out = model(input_ids=input_ids, pixel_values=pixels['pixel_values'], image_grid_thw=pixels['image_grid_thw'])
    assert out.logits.shape == (1, 6, len(tokenizer))
