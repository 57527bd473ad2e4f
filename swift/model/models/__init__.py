from . import llama, qwen, qwen_vl  # noqa: F401
