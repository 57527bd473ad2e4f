from . import bert, llama, qwen, qwen_vl  # noqa: F401
