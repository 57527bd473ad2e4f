"""A tiny Qwen2-Audio with random weights, for tests, demos and benchmarks. Offline.

    python -m swift.utils.tiny_audio OUT_DIR [--hidden 128]

The folder is a real Hugging Face model folder: config.json, safetensors weights, the tiny Qwen2 tokenizer of
``tiny_models`` plus Qwen2-Audio's audio tokens and chat template, and a WhisperFeatureExtractor with 32 mel bins
and a 1 s window (the real model: 128 bins, 30 s), so one clip makes 25 ``<|AUDIO|>`` tokens.
"""
import argparse
import os

from .tiny_models import build_tokenizer

AUDIO_SPECIAL = ['<|AUDIO|>', '<|audio_bos|>', '<|audio_eos|>']
# Qwen2-Audio-7B-Instruct's chat template (its tokenizer_config.json).
QWEN2_AUDIO_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content %}{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MEL_BINS, WINDOW_SECONDS = 32, 1


def build_tiny_audio_model(out_dir: str, hidden_size: int = 64, num_layers: int = 2, vocab_size: int = 1000,
                           seed: int = 0, extra_texts: list[str] | None = None) -> str:
    """Write a random-weight Qwen2-Audio (a 2-layer audio tower of width 32) with its processor to ``out_dir``."""
    import torch
    from transformers import AutoConfig, Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor
    torch.manual_seed(seed)
    tokenizer = build_tokenizer('qwen2', vocab_size, extra_texts)
    tokenizer.add_special_tokens({'additional_special_tokens': AUDIO_SPECIAL})
    tokenizer.chat_template = QWEN2_AUDIO_TEMPLATE
    text = dict(model_type='qwen2', vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                intermediate_size=hidden_size * 4, num_attention_heads=4, num_key_value_heads=2,
                head_dim=hidden_size // 4, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    extractor = WhisperFeatureExtractor(feature_size=MEL_BINS, chunk_length=WINDOW_SECONDS)
    # the tower's second convolution halves the mel frames: it expects max_source_positions * 2 of them
    audio = dict(model_type='qwen2_audio_encoder', d_model=32, encoder_layers=2, encoder_attention_heads=2,
                 encoder_ffn_dim=64, num_mel_bins=MEL_BINS, max_source_positions=extractor.nb_max_frames // 2)
    config = AutoConfig.for_model('qwen2_audio', text_config=text, audio_config=audio, tie_word_embeddings=False,
                                  audio_token_index=tokenizer.convert_tokens_to_ids('<|AUDIO|>'))
    model = Qwen2AudioForConditionalGeneration(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--hidden', type=int, default=128)
    parser.add_argument('--layers', type=int, default=2)
    args = parser.parse_args()
    print(build_tiny_audio_model(args.out_dir, args.hidden, args.layers))


if __name__ == '__main__':
    main()
