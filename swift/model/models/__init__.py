from . import bert, llama, qwen, qwen3_vl, qwen_vl  # noqa: F401
