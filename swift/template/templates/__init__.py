from . import default, hf, llama, qwen  # noqa: F401
