"""Llama 2 and Llama 3 models. Both have config model_type 'llama'; the tokenizer's template tells them apart."""
from ..registry import ModelMeta, register_model


def _llama_template(chat_template: str) -> str | None:
    return 'llama3' if '<|start_header_id|>' in chat_template else 'hf'


# Without a chat template the folder is a base model: the 'default' template suits it.
register_model(ModelMeta('llama', config_model_types=['llama'], architectures=['LlamaForCausalLM'], template='default',
                         template_from_chat_template=_llama_template))
