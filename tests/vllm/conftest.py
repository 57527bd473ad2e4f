"""Fixtures of the vLLM tests (run in .venv-vllm): a tiny model vLLM's CPU attention accepts, and LoRA adapters."""
import pytest

from tests.deploy.support import make_adapter

# vLLM's CPU attention takes head sizes 32, 64, 80, ...: hidden 128 over the tiny models' 4 heads gives 32.
HIDDEN_SIZE = 128


@pytest.fixture(scope='session')
def vllm_model_dir(tmp_path_factory) -> str:
    from swift.utils.tiny_models import build_tiny_model
    # The context of Qwen2.5-7B, so that the seeds' --vllm_max_model_len 8192 fits as it does there.
    return build_tiny_model(str(tmp_path_factory.mktemp('vllm-qwen2')), 'qwen2', hidden_size=HIDDEN_SIZE,
                            max_position_embeddings=32768)


@pytest.fixture(scope='session')
def vllm_adapters(vllm_model_dir, tmp_path_factory) -> dict[str, str]:
    """Two LoRA checkpoints with random weights, so that each changes the answers its own way."""
    root = tmp_path_factory.mktemp('vllm-adapters')
    return {name: make_adapter(vllm_model_dir, str(root / name), seed) for name, seed in (('lora1', 1), ('lora2', 2))}
