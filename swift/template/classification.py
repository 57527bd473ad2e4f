"""The ids a sequence-classification model reads: the whole conversation, no generation prompt, no token labels.

With a chat template this is the template's own encoding (so a reward model scores exactly what sft would train
on); without one (``--use_chat_template false``, ms-swift's seq_cls examples) the contents are joined and tokenized
with the tokenizer's own special tokens, which frames them as an encoder expects ([CLS] text [SEP] for BERT).
"""
from .base import Template


def encode_for_classification(template: Template, messages: list[dict]) -> list[int] | None:
    """``input_ids`` of ``messages``, or None when --truncation_strategy delete drops them."""
    if template.use_chat_template:
        encoded = template.encode({'messages': messages})
        return None if encoded is None else encoded['input_ids']
    text = '\n'.join(m['content'] for m in messages if m['role'] != 'system')
    ids = template.tokenizer(text)['input_ids']
    encoded = template._truncate({'input_ids': ids})
    return None if encoded is None else encoded['input_ids']
