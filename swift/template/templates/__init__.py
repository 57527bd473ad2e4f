from . import bert, default, hf, llama, qwen, qwen_vl  # noqa: F401
