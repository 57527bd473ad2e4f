from . import bert, llama, qwen, qwen3_vl, qwen_audio, qwen_vl  # noqa: F401
