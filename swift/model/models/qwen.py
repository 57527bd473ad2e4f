"""Qwen2, Qwen2.5 and Qwen3 text models."""
from ..registry import ModelMeta, register_model


def _qwen2_template(chat_template: str) -> str | None:
    # Qwen2.5 ships a default system prompt naming Qwen; Qwen2 and most fine-tunes use plain chatml.
    return 'qwen2_5' if 'You are Qwen, created by Alibaba Cloud' in chat_template else None


register_model(ModelMeta('qwen2', config_model_types=['qwen2'], architectures=['Qwen2ForCausalLM'], template='qwen',
                         template_from_chat_template=_qwen2_template))
register_model(ModelMeta('qwen3', config_model_types=['qwen3'], architectures=['Qwen3ForCausalLM'],
                         template='qwen3'))
