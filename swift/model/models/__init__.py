from . import llama, qwen  # noqa: F401
