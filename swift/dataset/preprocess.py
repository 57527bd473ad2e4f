"""Detect each row's format and normalise it to ``{'messages': [...]}`` plus any extra columns.

Formats (from the seeds): messages; ShareGPT (``conversation`` with human/assistant pairs, or ``conversations``
with from/value); Alpaca (instruction/input/output); query/response/history; and for pre-training a bare ``text``
or ``response``. Extra columns (e.g. ``solution``, ``label``) pass through for reward functions and KTO.

Preference rows follow the seeds: the conversation ends in the chosen answer and ``rejected_response`` holds the
other. trl's ``prompt``/``chosen``/``rejected`` columns (strings or message lists) are turned into that form.
"""
import copy
from typing import Any

from .errors import RowError
from .tools import check_tool_calls, expand_tool_calls, parse_tools
from .media import MEDIA, take_media

_SHAREGPT_ROLES = {'human': 'user', 'user': 'user', 'gpt': 'assistant', 'assistant': 'assistant', 'bot': 'assistant',
                   'system': 'system', 'tool': 'tool', 'function': 'tool', 'observation': 'tool',
                   'function_call': 'tool_call', 'tool_call': 'tool_call', 'tool_response': 'tool'}
_ROLES = {'system', 'user', 'assistant', 'tool', 'tool_call'}
# Column names that mean the same thing across public datasets.
_QUERY_KEYS = ('query', 'prompt', 'question', 'problem')
_RESPONSE_KEYS = ('response', 'answer', 'completion')
_CONSUMED = {'messages', 'conversation', 'conversations', 'system', 'instruction', 'input', 'output', 'history',
             'text', *_QUERY_KEYS, *_RESPONSE_KEYS}


def normalize_row(row: dict[str, Any], base_dir: str | None = None, auto_columns: bool = True) -> dict[str, Any]:
    """``{'messages': [...], **extra}`` for one raw row, plus ``images``/``videos``/``audios`` when it has media
    (relative paths are read from ``base_dir``, the dataset file's folder). Raises RowError naming the problem.

    ``auto_columns=False`` (``--disable_auto_column_mapping``, as ms-swift) reads the question and answer only from
    ``query``/``response``: other names (prompt, question, problem, answer, completion) stay extra columns unless
    ``--columns`` renames them."""
    if not isinstance(row, dict):
        raise RowError(f'expected a JSON object, got {type(row).__name__}')
    if 'chosen' in row:
        row = _from_chosen_rejected(row)
    query_keys, response_keys = (_QUERY_KEYS, _RESPONSE_KEYS) if auto_columns else (('query',), ('response',))
    messages = _to_messages(row, query_keys, response_keys)
    consumed = _CONSUMED if auto_columns else _CONSUMED - {*_QUERY_KEYS[1:], *_RESPONSE_KEYS[1:]}
    extra = {k: v for k, v in row.items() if k not in consumed}
    media = take_media(messages, extra, base_dir)
    _check_messages(messages)
    _agent_columns(messages, extra)
    return {'messages': messages, **extra, **media, **_rejected_side(messages, extra, base_dir)}


def _rejected_side(messages: list[dict], extra: dict, base_dir: str | None) -> dict:
    """ms-swift's ``rejected_messages`` and ``rejected_images``/``_videos``/``_audios``: the rejected conversation
    and its own media, checked as the chosen side's are (placeholders against the rejected conversation)."""
    rejected_messages = extra.pop('rejected_messages', None)
    own_media = {key: extra.pop(f'rejected_{key}') for key in MEDIA if f'rejected_{key}' in extra}
    if rejected_messages is None and not own_media:
        return {}
    out = {}
    if rejected_messages is not None:
        out['rejected_messages'] = rejected_messages = _openai_messages(rejected_messages, 'rejected_messages')
        _check_messages(rejected_messages)
    if own_media:
        conversation = rejected_messages or copy.deepcopy(messages)
        try:
            checked = take_media(conversation, own_media, base_dir)
        except RowError as err:
            raise RowError(f'rejected side: {err}') from None
        out.update({f'rejected_{key}': checked.get(key, []) for key in MEDIA})
    return out


def _agent_columns(messages: list[dict], extra: dict) -> None:
    """Agent rows: each tool call checked, and ``tools`` as the list of function specs the agent template writes
    into the system prompt."""
    check_tool_calls(messages)
    if 'tools' in extra:
        extra['tools'] = parse_tools(extra['tools'])
        if extra['tools'] is None:
            del extra['tools']


def _to_messages(row: dict, query_keys: tuple = _QUERY_KEYS, response_keys: tuple = _RESPONSE_KEYS) -> list[dict]:
    if 'messages' in row:
        return _openai_messages(row['messages'], 'messages')
    if 'conversations' in row:
        return _sharegpt_from_value(row['conversations'])
    if 'conversation' in row:
        return _system(row) + _sharegpt_pairs(row['conversation'])
    if 'instruction' in row:
        query = '\n'.join(p for p in (_text(row, 'instruction'), _text(row, 'input')) if p)
        return _system(row) + _history(row) + _turn(query, _required(row, 'output'))
    query_key = next((k for k in query_keys if k in row), None)
    response_key = next((k for k in response_keys if k in row), None)
    if query_key and response_key:
        return _system(row) + _history(row) + _turn(_text(row, query_key), _text(row, response_key))
    if response_key or 'text' in row:  # pre-training rows: text only
        return [{'role': 'assistant', 'content': _text(row, response_key or 'text')}]
    if query_key:  # a prompt without an answer, for generation (infer, GRPO)
        return _system(row) + _history(row) + [{'role': 'user', 'content': _text(row, query_key)}]
    raise RowError(f"unknown format: columns {sorted(row)}; expected messages, conversations, conversation, "
                   "instruction/output, query/response or text (rename columns with --columns)")


def _from_chosen_rejected(row: dict) -> dict:
    """trl's preference columns as the seeds' form: ``messages`` ending in the chosen answer + ``rejected_response``.

    ``chosen`` is a string or a message list; without ``prompt`` a list is the whole conversation (trl's implicit
    prompt). ``rejected`` is a string or a list whose last message is the rejected answer.
    """
    chosen, prompt = row['chosen'], row.get('prompt')
    if isinstance(prompt, list):
        prompt_messages = _openai_messages(prompt, 'prompt')
    elif prompt is not None:
        prompt_messages = _system(row) + [{'role': 'user', 'content': _text(row, 'prompt')}]
    elif isinstance(chosen, list):
        prompt_messages = []
    else:
        raise RowError("field 'chosen' is a string, so a 'prompt' column is needed")
    if isinstance(chosen, list):
        chosen_messages = _openai_messages(chosen, 'chosen')
    else:
        chosen_messages = [{'role': 'assistant', 'content': _text(row, 'chosen')}]
    out = {k: v for k, v in row.items() if k not in ('prompt', 'chosen', 'rejected', 'system')}
    out['messages'] = prompt_messages + chosen_messages
    rejected = row.get('rejected')
    if isinstance(rejected, list) and rejected:
        rejected = _openai_messages(rejected, 'rejected')[-1]['content']
    if rejected is not None:
        out['rejected_response'] = rejected
    return out


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return ''
    if not isinstance(value, str):
        raise RowError(f'field {key!r} must be a string, got {type(value).__name__}')
    return value


def _required(row: dict, key: str) -> str:
    if not _text(row, key):
        raise RowError(f'field {key!r} is missing or empty')
    return row[key]


def _system(row: dict) -> list[dict]:
    system = _text(row, 'system')
    return [{'role': 'system', 'content': system}] if system else []


def _turn(query: str, response: str) -> list[dict]:
    return [{'role': 'user', 'content': query}, {'role': 'assistant', 'content': response}]


def _history(row: dict) -> list[dict]:
    history = row.get('history') or []
    if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
        raise RowError("field 'history' must be a list of [query, response] pairs")
    return [m for query, response in history for m in _turn(query, response)]


def _openai_messages(messages: Any, field: str) -> list[dict]:
    if not isinstance(messages, list):
        raise RowError(f'field {field!r} must be a list of messages')
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or 'role' not in message or (
                'content' not in message and 'tool_calls' not in message):
            raise RowError(f"{field}[{i}] must be an object with 'role' and 'content'")
        kept = {k: v for k, v in message.items() if k in ('role', 'content', 'loss', 'reasoning_content', 'tool_calls')}
        if kept.get('content') is None:  # OpenAI's assistant message that only calls tools
            kept['content'] = ''
        out.extend(expand_tool_calls(kept, f'{field}[{i}]'))
    return out


def _sharegpt_from_value(conversations: Any) -> list[dict]:
    if isinstance(conversations, list) and conversations and 'role' in conversations[0]:
        return _openai_messages(conversations, 'conversations')
    if not isinstance(conversations, list):
        raise RowError("field 'conversations' must be a list")
    out = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or turn.get('from') not in _SHAREGPT_ROLES or 'value' not in turn:
            raise RowError(f"conversations[{i}] needs 'from' (one of {sorted(_SHAREGPT_ROLES)}) and 'value'")
        out.append({'role': _SHAREGPT_ROLES[turn['from']], 'content': turn['value']})
    return out


def _sharegpt_pairs(conversation: Any) -> list[dict]:
    if not isinstance(conversation, list):
        raise RowError("field 'conversation' must be a list of {'human': ..., 'assistant': ...}")
    out = []
    for i, pair in enumerate(conversation):
        if not isinstance(pair, dict) or 'human' not in pair or 'assistant' not in pair:
            raise RowError(f"conversation[{i}] needs 'human' and 'assistant'")
        out += _turn(pair['human'], pair['assistant'])
    return out


def _check_messages(messages: list[dict]) -> None:
    if not messages:
        raise RowError('the conversation is empty')
    for i, message in enumerate(messages):
        if message['role'] not in _ROLES:
            raise RowError(f"messages[{i}] has role {message['role']!r}; expected one of {sorted(_ROLES)}")
        if not isinstance(message['content'], str) and message['role'] != 'tool_call':
            raise RowError(f'messages[{i}].content must be a string')
        if message['role'] == 'system' and i != 0:
            raise RowError(f'messages[{i}] is a system message; only the first message may be one')


def rename_columns(row: dict, columns: dict[str, str] | None) -> dict:
    if not columns:
        return row
    return {columns.get(key, key): value for key, value in row.items()}

