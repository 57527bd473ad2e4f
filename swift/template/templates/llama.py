"""Llama 3 and 3.x chat format."""
from ..base import TemplateMeta
from ..registry import register_template

register_template(TemplateMeta(
    'llama3',
    prefix='<|begin_of_text|>',
    system_format='<|start_header_id|>system<|end_header_id|>\n\n{{SYSTEM}}<|eot_id|>',
    user_format='<|start_header_id|>user<|end_header_id|>\n\n{{QUERY}}<|eot_id|>',
    tool_format='<|start_header_id|>ipython<|end_header_id|>\n\n{{QUERY}}<|eot_id|>',
    assistant_prefix='<|start_header_id|>assistant<|end_header_id|>\n\n',
    response_end='<|eot_id|>',
    stop_words=['<|end_of_text|>'],
))
