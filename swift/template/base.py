"""Turn a conversation into ``input_ids`` and ``labels``.

A template renders the conversation to text while recording the character spans that carry loss, then tokenizes
the whole text once. A token carries loss when it starts inside such a span. Tokenizing once keeps the ids equal
to what the tokenizer's own ``apply_chat_template`` gives for the same text.
"""
import re
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase, ProcessorMixin

from ..utils import SwiftError
from .agent import agent_conversation, get_agent_template
from .loss_scale import WEIGHTED_LOSS_SCALES, WeightedRange, answer_weights, weight_at

IGNORE_INDEX = -100
Span = tuple[int, int]
# A row's media columns (see dataset/media.py), which a multimodal template turns into model inputs.
MEDIA_KEYS = ('images', 'videos', 'audios')
# --loss_scale: a base strategy, optionally followed by a weighted agent scale (loss_scale.py) and/or
# '+ignore_empty_think' (ms-swift's spelling: 'react', 'last_round+hermes', 'hermes+ignore_empty_think').
LOSS_STRATEGIES = ('default', 'last_round', 'all')
LOSS_MODIFIERS = ('ignore_empty_think',)
# ignore_empty_think: an answer's leading empty reasoning block takes no loss (ms-swift's regex).
EMPTY_THINK = re.compile(r'^<think>\s*</think>\s*')


@dataclass
class TemplateMeta:
    """The text around each turn. ``{{SYSTEM}}`` and ``{{QUERY}}`` are replaced; ``{{EOS}}`` is the eos token."""
    template_type: str
    prefix: str = ''
    system_format: str = '{{SYSTEM}}\n\n'
    user_format: str = '{{QUERY}}'
    tool_format: str | None = None
    assistant_prefix: str = ''
    response_end: str = '{{EOS}}'  # closes an assistant turn and carries loss: the model must learn to stop
    turn_sep: str = ''  # follows response_end, no loss
    default_system: str | None = None
    stop_words: list[str] = field(default_factory=list)
    # Hybrid-thinking families (ms-swift's names): what --enable_thinking true/false appends to the generation prompt.
    thinking_prefix: str = ''
    non_thinking_prefix: str = ''
    # How tools and tool calls are written when --agent_template is not given (ms-swift's default per family).
    agent_template: str = 'react_en'


class Prompt(list):
    """Prompt ids (a list, so every engine takes them as such), with the model inputs of the prompt's media where
    it has any: ``pixel_values``, ``image_grid_thw``, ``mm_token_type_ids``, ..."""

    def __init__(self, ids: list[int], media: dict[str, Any] | None = None):
        super().__init__(ids)
        self.media = media or {}


@dataclass
class Rendered:
    text: str
    loss_spans: list[Span]
    # --loss_scale react/hermes/...: weighted character ranges inside the loss spans (weight 1 elsewhere).
    weights: list[WeightedRange] = field(default_factory=list)


class Template:
    """Encodes rows for training and prompts for generation with one model's chat format."""
    # Templates whose render records the weighted ranges of --loss_scale react/hermes/... (not the jinja backend's
    # or the multimodal templates', whose spans are found or moved afterwards).
    supports_weighted_loss_scale = True

    def __init__(self, meta: TemplateMeta, tokenizer: PreTrainedTokenizerBase | ProcessorMixin,
                 default_system: str | None = None, max_length: int | None = None, truncation_strategy: str = 'delete',
                 loss_scale: str = 'default', use_chat_template: bool = True, response_prefix: str | None = None,
                 enable_thinking: bool | None = None, preserve_thinking: bool | None = None,
                 add_non_thinking_prefix: bool = True, agent_template: str | None = None):
        self.meta = meta
        # A multimodal model comes with a processor, which holds the tokenizer (ms-swift's template.processor).
        self.processor = tokenizer
        self.tokenizer = tokenizer.tokenizer if isinstance(tokenizer, ProcessorMixin) else tokenizer
        self.default_system = default_system if default_system is not None else meta.default_system
        self.max_length = max_length
        self.truncation_strategy = truncation_strategy
        self.loss_scale, self.ignore_empty_think, self.weighted_scale = parse_loss_scale(loss_scale)
        if self.weighted_scale and not self.supports_weighted_loss_scale:
            raise SwiftError(f'--loss_scale {loss_scale}: weighted loss scales are built for the text templates of '
                             '--template_backend swift only')
        self.use_chat_template = use_chat_template
        # Thinking flags (ms-swift's): response_prefix wins over enable_thinking; None keeps the chat template's own
        # default (Qwen3 thinks). preserve_thinking keeps earlier rounds' <think>; add_non_thinking_prefix writes the
        # empty think block of a final answer that has none. Templates without reasoning blocks ignore the last two.
        self.response_prefix = response_prefix
        self.enable_thinking = enable_thinking
        self.preserve_thinking = preserve_thinking
        self.add_non_thinking_prefix = add_non_thinking_prefix
        self.agent = get_agent_template(agent_template or meta.agent_template)
        eos = tokenizer.eos_token or ''
        self.response_end = meta.response_end.replace('{{EOS}}', eos)
        self.stop_words = [w for w in dict.fromkeys([*meta.stop_words, self.response_end, eos]) if w]

    @property
    def template_type(self) -> str:
        return self.meta.template_type

    def single_token_stops(self) -> list[int]:
        """Ids that end an answer for ``generate``: EOS and every stop word that is a single token."""
        ids = {self.tokenizer.eos_token_id}
        for word in self.stop_words:
            token_ids = self.tokenizer.encode(word, add_special_tokens=False)
            if len(token_ids) == 1:
                ids.add(token_ids[0])
        return sorted(i for i in ids if i is not None)

    # ---- rendering -------------------------------------------------------------------------------------------
    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> Rendered:
        """Text for ``messages``, with the spans that carry loss."""
        messages, system = self._split_system(messages)
        parts = [self.meta.prefix]
        if system is not None:
            parts.append(self.meta.system_format.replace('{{SYSTEM}}', system))
        spans: list[Span] = []
        weights: list[WeightedRange] = []
        # Tool results are no new question (Qwen3 keeps the reasoning of every turn after the last real one).
        last_query = max((i for i, m in enumerate(messages) if m['role'] == 'user' and not m.get('tool_response')),
                         default=-1)
        assistant_turns = [i for i, m in enumerate(messages) if m['role'] == 'assistant']
        # react: a prompt that ends in a tool's result inside the assistant's turn is continued, not closed.
        continued = add_generation_prompt and bool(messages) and bool(messages[-1].get('continued'))
        for i, message in enumerate(messages):
            if message['role'] == 'assistant':
                parts.append(self.meta.assistant_prefix)
                start = sum(map(len, parts))
                response = self.format_response(message, after_last_query=i > last_query,
                                                is_last=i == len(messages) - 1)
                open_turn = continued and i == len(messages) - 1
                parts.append(response + ('' if open_turn else self.response_end))
                if self._carries_loss(message, is_last_turn=i == assistant_turns[-1]):
                    untrained = self._untrained(message, response)
                    if self.weighted_scale:
                        turn_weights = self._weights(response, untrained, _query_before(messages, i))
                        untrained += [(a, b) for a, b, w in turn_weights if w == 0]
                        weights += [(start + a, start + b, w) for a, b, w in turn_weights if w != 1]
                    holes = [(start + a, start + b) for a, b in untrained]
                    spans.extend(_without((start, sum(map(len, parts))), holes))
                if not open_turn:
                    parts.append(self.meta.turn_sep)
            else:
                parts.append(self._format_query(message))
        if add_generation_prompt and not continued:
            parts.append(self.meta.assistant_prefix + self.generation_prefix())
        text = ''.join(parts)
        if self.loss_scale == 'all':
            spans = [(0, len(text))]
        return Rendered(text, spans, weights)

    def _untrained(self, message: dict, response: str) -> list[Span]:
        """Ranges of the rendered ``response`` that take no loss: tool results inside the turn (react), and with
        ignore_empty_think a leading empty reasoning block. A template's formatting adds text in front of the
        content only, so the content's ranges move by the length it added."""
        shift = len(response) - len(message['content'])
        ranges = [(a + shift, b + shift) for a, b in message.get('untrained', ()) if a + shift >= 0]
        empty_think = EMPTY_THINK.match(response) if self.ignore_empty_think else None
        if empty_think:
            ranges.append((0, empty_think.end()))
        return ranges

    def _weights(self, response: str, untrained: list[Span], query: str) -> list[WeightedRange]:
        """--loss_scale react/hermes/...: weighted ranges of the response. As in ms-swift, each trained piece
        between the untrained ones (a react turn's tool results) is weighed on its own: the answer after an
        ``Observation:`` result is no longer the observation."""
        ranges = []
        for a, b in _without((0, len(response)), untrained):
            ranges += [(a + x, a + y, w) for x, y, w in answer_weights(self.weighted_scale, response[a:b], query)]
        return ranges

    def agent_messages(self, messages: list[dict], tools: list[dict] | None = None) -> list[dict]:
        """The conversation with its tools and tool calls written out by the agent template (--agent_template)."""
        return agent_conversation(messages, tools, self.agent, self.default_system)

    def generation_prefix(self) -> str:
        """What the answer starts with at inference: --response_prefix, else the thinking or non-thinking prefix
        --enable_thinking asks for (nothing when it is unset)."""
        if self.response_prefix is not None:
            return self.response_prefix
        if self.enable_thinking is None or not self.use_chat_template:
            return ''
        return self.meta.thinking_prefix if self.enable_thinking else self.meta.non_thinking_prefix

    def format_response(self, message: dict, after_last_query: bool, is_last: bool) -> str:
        """The assistant text as it appears in the prompt. Templates with reasoning blocks override this."""
        return message['content']

    def _format_query(self, message: dict) -> str:
        role = message['role']
        if role == 'user' or (role == 'tool' and self.meta.tool_format is None):
            return self.meta.user_format.replace('{{QUERY}}', message['content'])
        if role == 'tool':
            return self.meta.tool_format.replace('{{QUERY}}', message['content'])
        raise SwiftError(f"role {role!r} is not supported here; use system, user, assistant or tool")

    def _split_system(self, messages: list[dict]) -> tuple[list[dict], str | None]:
        """The row's own system message wins over --system, which wins over the template's default."""
        if messages and messages[0]['role'] == 'system':
            return messages[1:], messages[0]['content']
        return messages, self.default_system

    def _carries_loss(self, message: dict, is_last_turn: bool) -> bool:
        if message.get('loss') is not None:
            return bool(message['loss'])
        return is_last_turn if self.loss_scale == 'last_round' else True

    # ---- encoding --------------------------------------------------------------------------------------------
    def encode(self, row: dict[str, Any], add_generation_prompt: bool = False) -> dict[str, list[int]] | None:
        """``input_ids`` and ``labels`` for one row, or None when --truncation_strategy delete drops it."""
        media = [key for key in MEDIA_KEYS if row.get(key)]
        if media:
            raise SwiftError(f'the {self.template_type} template takes text only, and this row has {media[0]}: '
                             'train a multimodal model (e.g. Qwen2.5-VL) on it')
        messages = row['messages']
        if not self.use_chat_template:
            messages = [m for m in messages if m['role'] not in ('tool_call', 'tool_response')]
            return self._truncate(self._encode_plain(messages))
        if add_generation_prompt and messages and messages[-1]['role'] == 'assistant':
            messages = messages[:-1]
        messages = self.agent_messages(messages, row.get('tools'))
        rendered = self.render(messages, add_generation_prompt=add_generation_prompt)
        return self._truncate(self._tokenize(rendered))

    def encode_prompt(self, messages: list[dict], media: dict[str, list] | None = None,
                      tools: list[dict] | None = None) -> 'Prompt':
        """Ids of a conversation with the generation prompt appended: what a model continues (infer, GRPO, PPO).
        ``media`` holds the row's ``images``/``videos``/``audios``; their model inputs ride on the ids; ``tools``
        (OpenAI function specs) go into the system prompt as the agent template writes them."""
        row = {'messages': messages, **(media or {}), **({'tools': tools} if tools else {})}
        encoded = self.encode(row, add_generation_prompt=True)
        if encoded is None:
            raise SwiftError(f'the prompt is longer than --max_length {self.max_length} tokens')
        return Prompt(encoded['input_ids'],
                      {k: v for k, v in encoded.items() if k not in ('input_ids', 'labels', 'loss_scale')})

    def _encode_plain(self, messages: list[dict]) -> dict[str, list[int]]:
        """Pre-training: the contents joined as plain text, every token in the loss, closed by eos."""
        text = ''.join(m['content'] for m in messages if m['role'] != 'system')
        input_ids = self.tokenizer(text, add_special_tokens=False)['input_ids']
        if self.tokenizer.eos_token_id is not None:
            input_ids = input_ids + [self.tokenizer.eos_token_id]
        return {'input_ids': input_ids, 'labels': list(input_ids)}

    def _tokenize(self, rendered: Rendered) -> dict[str, list[int]]:
        encoded = self.tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
        labels = [token if _in_spans(start, rendered.loss_spans) else IGNORE_INDEX
                  for token, (start, _) in zip(encoded['input_ids'], encoded['offset_mapping'])]
        if not self.weighted_scale:  # 0/1 scales live in the labels alone (no loss_scale: losses as without it)
            return {'input_ids': encoded['input_ids'], 'labels': labels}
        loss_scale = [weight_at(start, rendered.weights) if label != IGNORE_INDEX else 0.0
                      for label, (start, _) in zip(labels, encoded['offset_mapping'])]
        return {'input_ids': encoded['input_ids'], 'labels': labels, 'loss_scale': loss_scale}

    def _truncate(self, encoded: dict[str, list[int]]) -> dict[str, list[int]] | None:
        if self.max_length is None or len(encoded['input_ids']) <= self.max_length:
            return encoded
        if self.truncation_strategy == 'delete':
            return None
        keep = slice(-self.max_length, None) if self.truncation_strategy == 'left' else slice(self.max_length)
        return {key: value[keep] for key, value in encoded.items()}

    # ---- alignment -------------------------------------------------------------------------------------------
    def encode_pair(self, row: dict[str, Any]) -> dict[str, list[int]] | None:
        """``prompt_ids``, then the ``chosen_ids`` and ``rejected_ids`` that follow it (DPO, ORPO, CPO, SimPO, RM).

        Both answers are encoded as sft encodes the row, so system prompt, masks and truncation match; an answer
        covers the tokens of the final turn's loss span. None when truncation removes either answer.
        """
        return self._pair(self.encode(row), self.encode(rejected_row(row)))

    def _pair(self, chosen: dict | None, rejected: dict | None) -> dict[str, list[int]] | None:
        if chosen is None or rejected is None:
            return None
        chosen_span, rejected_span = last_loss_span(chosen['labels']), last_loss_span(rejected['labels'])
        if chosen_span is None or rejected_span is None:
            return None
        # Both answers share the prompt's tokens up to where their texts part.
        prompt_len = min(chosen_span[0], rejected_span[0], _common_prefix(chosen['input_ids'], rejected['input_ids']))
        return {'prompt_ids': chosen['input_ids'][:prompt_len],
                'chosen_ids': chosen['input_ids'][prompt_len:chosen_span[1]],
                'rejected_ids': rejected['input_ids'][prompt_len:rejected_span[1]]}

    def encode_completion(self, row: dict[str, Any]) -> dict[str, list[int]] | None:
        """``prompt_ids`` and the ``completion_ids`` of the final answer (KTO's unpaired rows)."""
        return self._completion(self.encode(row))

    def _completion(self, encoded: dict | None) -> dict[str, list[int]] | None:
        span = None if encoded is None else last_loss_span(encoded['labels'])
        if span is None:
            return None
        return {'prompt_ids': encoded['input_ids'][:span[0]], 'completion_ids': encoded['input_ids'][span[0]:span[1]]}

    # ---- generation ------------------------------------------------------------------------------------------
    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)


def rejected_row(row: dict[str, Any]) -> dict[str, Any]:
    """The rejected side of a preference row, as ms-swift reads it: ``rejected_messages`` (a whole conversation),
    else the conversation with its last answer replaced by ``rejected_response`` (or kept, when only the media
    differ). Its media are ``rejected_images``/``rejected_videos``/``rejected_audios`` where given, else the row's."""
    if row.get('rejected_messages'):
        messages = row['rejected_messages']
    else:
        answer = row.get('rejected_response') or row['messages'][-1]['content']
        messages = [*row['messages'][:-1], {'role': 'assistant', 'content': answer}]
    own_media = any(row.get(f'rejected_{key}') is not None for key in MEDIA_KEYS)
    media = {key: row.get(f'rejected_{key}' if own_media else key) for key in MEDIA_KEYS}
    return {**row, 'messages': messages, **media}


def parse_loss_scale(loss_scale: str) -> tuple[str, bool, str | None]:
    """``last_round+react+ignore_empty_think`` → ('last_round', True, 'react'): base strategy, the modifier, the
    weighted scale; a bare modifier or weighted scale applies to the default strategy."""
    parts = loss_scale.split('+')
    strategy = parts.pop(0) if parts[0] in LOSS_STRATEGIES else 'default'
    weighted = [p for p in parts if p in WEIGHTED_LOSS_SCALES]
    unknown = [p for p in parts if p not in LOSS_MODIFIERS and p not in WEIGHTED_LOSS_SCALES]
    if unknown or len(weighted) > 1:
        problem = f'{unknown[0]!r} is not built' if unknown else 'one weighted scale at a time'
        raise SwiftError(f'--loss_scale {loss_scale!r}: {problem}; use one of {", ".join(LOSS_STRATEGIES)}, '
                         f'optionally followed by one of +{"/+".join(WEIGHTED_LOSS_SCALES)} '
                         f'and/or +{"/+".join(LOSS_MODIFIERS)}')
    return strategy, any(p in LOSS_MODIFIERS for p in parts), (weighted[0] if weighted else None)


def _without(span: Span, holes: list[Span]) -> list[Span]:
    """``span`` with the ``holes`` cut out of it."""
    pieces, start = [], span[0]
    for a, b in sorted(holes):
        if a > start:
            pieces.append((start, min(a, span[1])))
        start = max(start, b)
    if start < span[1]:
        pieces.append((start, span[1]))
    return [(a, b) for a, b in pieces if a < b]


def _query_before(messages: list[dict], index: int) -> str:
    """The question an answer replies to (agentflan's query keys read it)."""
    return next((m['content'] for m in reversed(messages[:index]) if m['role'] != 'assistant'), '')


def _in_spans(position: int, spans: list[Span]) -> bool:
    return any(start <= position < end for start, end in spans)


def last_loss_span(labels: list[int]) -> Span | None:
    """[start, end) of the last run of tokens that carry loss: the final answer."""
    end = next((i + 1 for i in range(len(labels) - 1, -1, -1) if labels[i] != IGNORE_INDEX), None)
    if end is None:
        return None
    start = end - 1
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    return start, end


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
