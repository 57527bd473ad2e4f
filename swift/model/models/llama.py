"""Llama 2 and Llama 3 models. Both have config model_type 'llama'; the tokenizer's template tells them apart."""
from ..registry import ModelMeta, register_model


def _llama_template(chat_template: str) -> str | None:
    return 'llama3' if '<|start_header_id|>' in chat_template else None


register_model(ModelMeta('llama', config_model_types=['llama'], architectures=['LlamaForCausalLM'], template='hf',
                         template_from_chat_template=_llama_template))
