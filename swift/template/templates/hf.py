"""The tokenizer's own chat template, for folders whose family is not registered.

The loss spans are found by rendering the conversation one assistant turn at a time: the text a turn adds, minus
trailing whitespace, is that turn's span.
"""
from ...utils import SwiftError
from ..base import Rendered, Template, TemplateMeta
from ..registry import register_template


class HfTemplate(Template):
    supports_weighted_loss_scale = False  # its loss spans are found or moved after rendering

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> Rendered:
        messages = self._with_default_system(messages)
        spans = []
        assistant_turns = [i for i, m in enumerate(messages) if m['role'] == 'assistant']
        for i in assistant_turns:
            before = self._apply(messages[:i], add_generation_prompt=True)
            through = self._apply(messages[:i + 1], add_generation_prompt=False)
            if not through.startswith(before):
                raise SwiftError(f'the chat template of {self.tokenizer.name_or_path} rewrites earlier turns; '
                                 'pass --template with a registered template')
            if self._carries_loss(messages[i], is_last_turn=i == assistant_turns[-1]):
                spans.append((len(before), len(through.rstrip())))
        text = self._apply(messages, add_generation_prompt=add_generation_prompt)
        if add_generation_prompt and self.response_prefix is not None:
            text += self.response_prefix
        return Rendered(text, [(0, len(text))] if self.loss_scale == 'all' else spans)

    def _apply(self, messages: list[dict], add_generation_prompt: bool) -> str:
        plain = [{'role': m['role'], 'content': m['content']} for m in messages]
        # --enable_thinking reaches the chat template as the variable hybrid-thinking templates (Qwen3's) read.
        kwargs = {} if self.enable_thinking is None else {'enable_thinking': self.enable_thinking}
        return self.tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  **kwargs)

    def _with_default_system(self, messages: list[dict]) -> list[dict]:
        if self.default_system is None or (messages and messages[0]['role'] == 'system'):
            return messages
        return [{'role': 'system', 'content': self.default_system}, *messages]


register_template(TemplateMeta('hf', response_end=''), HfTemplate)
