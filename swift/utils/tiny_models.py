"""Tiny models with random weights and a locally trained tokenizer, for tests, demos and benchmarks. Offline.

    python -m swift.utils.tiny_models OUT_DIR [--family qwen2|qwen2_5|qwen3|qwen3_moe|llama|mistral|qwen2_vl|qwen2_5_vl|qwen3_vl|qwen3_vl_moe]
        [--hidden 128] [--layers 2]
        [--corpus rows.jsonl ...]

``--corpus`` adds the text of jsonl files to the tokenizer's training text, so their words become single tokens.

Each folder is a real Hugging Face model folder: config.json, safetensors weights, and a fast tokenizer with the
family's real chat template. The vision families (``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``) add a small vision
tower and the image processor's ``preprocessor_config.json``, so ``AutoImageProcessor`` + the tokenizer make the
processor offline.
"""
import argparse
import json
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

CHATML_SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
QWEN3_SPECIAL = CHATML_SPECIAL + ['<think>', '</think>']
QWEN_VL_SPECIAL = CHATML_SPECIAL + ['<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>',
                                    '<|video_pad|>']
LLAMA3_SPECIAL = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']
ZEPHYR_SPECIAL = ['<s>', '</s>', '<unk>', '<|user|>', '<|assistant|>', '<|system|>']

QWEN2_TEMPLATE = (
    "{%- for message in messages %}{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' and "
    "not (message.content.startswith('<tool_response>')) %}{%- set ns.multi_step_tool = false %}"
    "{%- set ns.last_query_index = index %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}{%- set content = message.content %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}{%- if loop.last or (not loop.last and reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + "
    "content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")

# Qwen2.5-Instruct's chat template, tools included (hermes style: <tools>, <tool_call>, <tool_response>).
QWEN2_5_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    "{{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}"
    "{%- for tool in tools %}{{- \"\\n\" }}{{- tool | tojson }}{%- endfor %}"
    "{{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}"
    "{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}"
    "{%- endif %}{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

# Qwen2-VL's and Qwen2.5-VL's chat template (chat_template.json of the released checkpoints).
QWEN_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# Qwen3-VL's: Qwen2-VL's without the default system prompt.
QWEN3_VL_TEMPLATE = QWEN_VL_TEMPLATE.replace(
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}", '')

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

# Zephyr's format: a family swift has no template for, so the tokenizer's own template is used.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")

FAMILIES = {
    # family: (config model_type, special tokens, template, bos, eos, pad)
    'qwen2': ('qwen2', CHATML_SPECIAL, QWEN2_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen2_5': ('qwen2', CHATML_SPECIAL, QWEN2_5_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen3': ('qwen3', QWEN3_SPECIAL, QWEN3_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen3_moe': ('qwen3_moe', QWEN3_SPECIAL, QWEN3_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'llama': ('llama', LLAMA3_SPECIAL, LLAMA3_TEMPLATE, '<|begin_of_text|>', '<|eot_id|>', None),
    'mistral': ('mistral', ZEPHYR_SPECIAL, ZEPHYR_TEMPLATE, '<s>', '</s>', '<unk>'),
    'qwen2-base': ('qwen2', CHATML_SPECIAL, None, None, '<|endoftext|>', '<|endoftext|>'),
    'qwen2_vl': ('qwen2_vl', QWEN_VL_SPECIAL, QWEN_VL_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen2_5_vl': ('qwen2_5_vl', QWEN_VL_SPECIAL, QWEN_VL_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen3_vl': ('qwen3_vl', QWEN_VL_SPECIAL, QWEN3_VL_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
    'qwen3_vl_moe': ('qwen3_vl_moe', QWEN_VL_SPECIAL, QWEN3_VL_TEMPLATE, None, '<|im_end|>', '<|endoftext|>'),
}
VISION_FAMILIES = ('qwen2_vl', 'qwen2_5_vl', 'qwen3_vl', 'qwen3_vl_moe')
# Mixture-of-experts families: four small experts, two per token.
MOE_CONFIG = {'qwen3_moe': dict(num_experts=4, num_experts_per_tok=2),
              'qwen3_vl_moe': dict(num_experts=4, num_experts_per_tok=2)}
# The tiny image processor's pixel bounds: 4 to 64 merged vision tokens per image, so tests stay fast.
TINY_MIN_PIXELS, TINY_MAX_PIXELS = 56 * 56, 224 * 224

_WORDS = ('the a model answer question who are you I am assistant help language data train learn name swift robot '
          'developed by team hello world what is your can do this that with from for and to of in on it be '
          'think reason step first then because so yes no thanks please').split()
_CHINESE = '你好我是谁的一个人工智能助手由开发名字叫什么可以帮你回答问题模型训练数据世界中文英文谢谢请'


def _corpus(extra_texts: list[str], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = [' '.join(rng.choice(_WORDS) for _ in range(12)) for _ in range(2000)]
    lines += [''.join(rng.choice(_CHINESE) for _ in range(12)) for _ in range(500)]
    lines += [' '.join(str(rng.randint(0, 9999)) for _ in range(6)) for _ in range(200)]
    return lines + extra_texts


def build_tokenizer(family: str, vocab_size: int = 1000, extra_texts: list[str] | None = None):
    """A byte-level BPE tokenizer trained here, with the family's special tokens and chat template."""
    _, special, template, bos, eos, pad = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(extra_texts or []), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   unk_token='<unk>' if family == 'mistral' else None, chat_template=template)


def build_tiny_model(out_dir: str, family: str = 'qwen2', hidden_size: int = 64, num_layers: int = 2,
                     vocab_size: int = 1000, intermediate_size: int | None = None, seed: int = 0,
                     extra_texts: list[str] | None = None, max_position_embeddings: int = 4096) -> str:
    """Write a random-weight model of ``family`` with its tokenizer to ``out_dir``; returns ``out_dir``."""
    import torch
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(family, vocab_size, extra_texts)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                intermediate_size=intermediate_size or hidden_size * 4, num_attention_heads=4, num_key_value_heads=2,
                head_dim=hidden_size // 4, max_position_embeddings=max_position_embeddings,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    os.makedirs(out_dir, exist_ok=True)
    if family in VISION_FAMILIES:
        model = _vision_model(family, text, tokenizer)
        _image_processor(family).save_pretrained(out_dir)
    else:
        moe = MOE_CONFIG.get(family, {})
        if moe:
            moe = {**moe, 'moe_intermediate_size': hidden_size}
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(FAMILIES[family][0], tie_word_embeddings=True,
                                                                      **text, **moe))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _vision_model(family: str, text: dict, tokenizer):
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL with a 2-block vision tower of width 32 in front of the text model
    ``text``."""
    from transformers import AutoModelForImageTextToText
    # M-RoPE splits each head's rotary half into temporal, height and width sections, 2:3:3 (16/24/24 in Qwen).
    half = text['head_dim'] // 2
    spatial = (half - half // 4) // 2
    text['rope_parameters'] = {'rope_type': 'default', 'rope_theta': 1000000.0,
                               'mrope_section': [half - 2 * spatial, spatial, spatial]}
    vision = {'depth': 2, 'num_heads': 2, 'patch_size': 14, 'spatial_merge_size': 2, 'temporal_patch_size': 2}
    if family.startswith('qwen3_vl'):  # 16-pixel patches; block 0's features also feed the first LM layer (deepstack)
        text['rope_parameters']['mrope_interleaved'] = True
        if family in MOE_CONFIG:
            text.update(MOE_CONFIG[family], moe_intermediate_size=text['hidden_size'])
        vision.update(patch_size=16, hidden_size=32, intermediate_size=64, out_hidden_size=text['hidden_size'],
                      num_position_embeddings=64, deepstack_visual_indexes=[0])
    elif family == 'qwen2_5_vl':
        vision.update(hidden_size=32, intermediate_size=64, out_hidden_size=text['hidden_size'], window_size=112,
                      fullatt_block_indexes=[1], tokens_per_second=2)
    else:
        vision.update(embed_dim=32, mlp_ratio=2, hidden_size=text['hidden_size'])
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
        ('vision_start_token_id', '<|vision_start|>'), ('vision_end_token_id', '<|vision_end|>'))}
    config = AutoConfig.for_model(family, text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    return AutoModelForImageTextToText.from_config(config)


def _image_processor(family: str):
    # The PIL image processor: torchvision's breaks transformers in a CPU environment.
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    if family.startswith('qwen3_vl'):  # Qwen3-VL's: 16-pixel patches (32 per merged token), mean and std 0.5
        return Qwen2VLImageProcessorPil(size={'shortest_edge': 64 * 64, 'longest_edge': 256 * 256}, patch_size=16,
                                        image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Qwen2VLImageProcessorPil(size={'shortest_edge': TINY_MIN_PIXELS, 'longest_edge': TINY_MAX_PIXELS})


def _strings_of_jsonl(path: str) -> list[str]:
    with open(path, encoding='utf-8') as f:
        return [value for line in f if line.strip() for value in json.loads(line).values() if isinstance(value, str)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--family', default='qwen2', choices=sorted(FAMILIES))
    parser.add_argument('--hidden', type=int, default=128)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--vocab', type=int, default=2000)
    parser.add_argument('--corpus', nargs='*', default=[], help='jsonl files whose strings train the tokenizer')
    # Qwen2.5's context, so that the seeds' --vllm_max_model_len 8192 fits the demo model as it fits theirs
    parser.add_argument('--max-position-embeddings', type=int, default=32768)
    args = parser.parse_args()
    build_tiny_model(args.out_dir, args.family, args.hidden, args.layers, args.vocab,
                     extra_texts=[text for path in args.corpus for text in _strings_of_jsonl(path)],
                     max_position_embeddings=args.max_position_embeddings)
    print(args.out_dir)


if __name__ == '__main__':
    main()
