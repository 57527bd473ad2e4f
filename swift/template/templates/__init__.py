from . import bert, default, hf, llama, qwen, qwen3_vl, qwen_audio, qwen_vl  # noqa: F401
