"""Model families, and their detection from a folder's ``config.json``.

A ``ModelMeta`` names its chat template by string; the pipeline joins model and template.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

from ..utils import SwiftError


@dataclass(frozen=True)
class ModelParts:
    """Module names of a multimodal model's parts (ms-swift's ``MultiModelKeys``), as ``named_modules`` spells them."""
    language_model: tuple[str, ...] = ()
    aligner: tuple[str, ...] = ()
    vision_tower: tuple[str, ...] = ()


@dataclass
class ModelMeta:
    model_type: str
    # config.json's ``model_type`` values and ``architectures`` entries that identify the family.
    config_model_types: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    template: str = 'default'
    # Refines the template from the tokenizer's own chat template (e.g. Qwen2 vs Qwen2.5 share config.json).
    template_from_chat_template: Callable[[str], str | None] | None = None
    # The media a multimodal family takes ('image', 'video', 'audio') and where its parts sit; empty for text.
    media: tuple[str, ...] = ()
    parts: ModelParts = ModelParts()
    # The transformers class that loads a causal LM of this family (None: AutoModelForCausalLM).
    model_class: type | None = None
    # (folder, tokenizer) -> the processor that goes with the model, returned in place of the tokenizer.
    load_processor: Callable[[str, Any], Any] | None = None
    # Changes the loaded model needs beyond transformers' own (e.g. positions of packed batches).
    patch_model: Callable[[Any], None] | None = None
    # An encoder (BERT-style): no chat template of its own, yet its template frames text with its special tokens.
    is_encoder: bool = False

    @property
    def is_multimodal(self) -> bool:
        return bool(self.media)

    def pick_template(self, chat_template: str | None) -> str:
        """The template for a folder whose tokenizer has ``chat_template``; none means a base model."""
        if not chat_template:
            return self.template if self.is_encoder else 'default'
        if self.template_from_chat_template is not None:
            return self.template_from_chat_template(chat_template) or self.template
        return self.template


MODEL_REGISTRY: dict[str, ModelMeta] = {}


def register_model(meta: ModelMeta) -> None:
    if meta.model_type in MODEL_REGISTRY:
        raise ValueError(f'model type {meta.model_type!r} is registered twice')
    MODEL_REGISTRY[meta.model_type] = meta


# Used for a folder whose config.json matches no family: the tokenizer's template decides.
# Its tokenizer's own chat template is used through the 'hf' template.
GENERIC_META = ModelMeta('generic', template='hf')


def detect_model_meta(config: dict, model_type: str | None = None) -> ModelMeta:
    """The family for ``config`` (a parsed config.json), or the one the user named with --model_type."""
    if model_type == GENERIC_META.model_type:  # what args.json records for a folder of no family: reloads the same
        return GENERIC_META
    if model_type is not None:
        if model_type not in MODEL_REGISTRY:
            raise SwiftError(f"--model_type {model_type!r} is not registered; known: {', '.join(sorted(MODEL_REGISTRY))}")
        return MODEL_REGISTRY[model_type]
    architectures = set(config.get('architectures') or [])
    for meta in MODEL_REGISTRY.values():
        if config.get('model_type') in meta.config_model_types and (
                not meta.architectures or architectures & set(meta.architectures) or not architectures):
            return meta
    return GENERIC_META
