from . import default, hf, llama, qwen, qwen_vl  # noqa: F401
