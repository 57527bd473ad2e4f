"""Templates by name. Each family registers one ``TemplateMeta`` (and, rarely, a Template subclass)."""
from transformers import PreTrainedTokenizerBase

from ..utils import SwiftError
from .base import Template, TemplateMeta

TEMPLATE_REGISTRY: dict[str, tuple[TemplateMeta, type[Template]]] = {}


def register_template(meta: TemplateMeta, template_cls: type[Template] = Template) -> None:
    if meta.template_type in TEMPLATE_REGISTRY:
        raise ValueError(f'template {meta.template_type!r} is registered twice')
    TEMPLATE_REGISTRY[meta.template_type] = (meta, template_cls)


def get_template(template_type: str, tokenizer: PreTrainedTokenizerBase, default_system: str | None = None,
                 **kwargs) -> Template:
    """A ready template. ``kwargs`` go to ``Template``: max_length, truncation_strategy, loss_scale, ..."""
    if template_type not in TEMPLATE_REGISTRY:
        raise SwiftError(f"--template {template_type!r} is not registered; known: {', '.join(sorted(TEMPLATE_REGISTRY))}")
    meta, template_cls = TEMPLATE_REGISTRY[template_type]
    return template_cls(meta, tokenizer, default_system=default_system, **kwargs)
