"""The template for base models that have no chat format of their own."""
from ..base import TemplateMeta
from ..registry import register_template

register_template(TemplateMeta(
    'default',
    system_format='{{SYSTEM}}\n\n',
    user_format='### Human:\n{{QUERY}}\n\n',
    assistant_prefix='### Assistant:\n',
    response_end='{{EOS}}',
    turn_sep='\n\n',
))
