from . import templates  # noqa: F401  registers the built-in templates
from .base import Template, TemplateMeta
from .collator import DataCollator
from .registry import TEMPLATE_REGISTRY, get_template, register_template
