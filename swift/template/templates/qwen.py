"""ChatML and the Qwen family: Qwen2 (qwen), Qwen2.5 (qwen2_5) and Qwen3 with its reasoning blocks."""
from dataclasses import replace

from ..base import Template, TemplateMeta
from ..registry import register_template

CHATML = TemplateMeta(
    'chatml',
    system_format='<|im_start|>system\n{{SYSTEM}}<|im_end|>\n',
    user_format='<|im_start|>user\n{{QUERY}}<|im_end|>\n',
    tool_format='<|im_start|>tool\n{{QUERY}}<|im_end|>\n',
    assistant_prefix='<|im_start|>assistant\n',
    response_end='<|im_end|>',
    turn_sep='\n',
    stop_words=['<|endoftext|>'],
)


class Qwen3Template(Template):
    """Qwen3 keeps ``<think>`` blocks only after the last user turn (all of them with --preserve_thinking true), and
    writes an empty one for a final answer without reasoning (not with --add_non_thinking_prefix false)."""

    def format_response(self, message: dict, after_last_query: bool, is_last: bool) -> str:
        content = message['content']
        reasoning = message.get('reasoning_content')
        if reasoning is None and '</think>' in content:
            reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
            content = content.split('</think>')[-1].lstrip('\n')
        reasoning = reasoning or ''
        if (reasoning and (after_last_query or self.preserve_thinking)) or (
                after_last_query and is_last and self.add_non_thinking_prefix):
            return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content.lstrip(chr(10))}"
        return content


# Qwen2.5 and Qwen3 hand tool results back as a user turn.
QWEN_TOOL_FORMAT = '<|im_start|>user\n<tool_response>\n{{QUERY}}\n</tool_response><|im_end|>\n'

register_template(CHATML)
register_template(replace(CHATML, template_type='qwen', default_system='You are a helpful assistant.'))
# Their own chat templates write tools and calls in hermes' format, so hermes is their agent template.
register_template(replace(CHATML, template_type='qwen2_5', tool_format=QWEN_TOOL_FORMAT, agent_template='hermes',
                          default_system='You are Qwen, created by Alibaba Cloud. You are a helpful assistant.'))
register_template(replace(CHATML, template_type='qwen3', tool_format=QWEN_TOOL_FORMAT, agent_template='hermes',
                          non_thinking_prefix='<think>\n\n</think>\n\n'), Qwen3Template)
