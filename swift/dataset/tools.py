"""Agent rows (ms-swift's format): a ``tools`` column and ``tool_call`` / ``tool_response`` messages.

``tools`` is a list of OpenAI function specs, or JSON text of one. A ``tool_call`` message's content is
``{"name": ..., "arguments": {...}}`` (an object or its JSON text); ``tool_response`` is ms-swift's other name for
``tool``. OpenAI's form, an assistant message with ``tool_calls``, becomes the same ``tool_call`` messages. Every
call is checked here, so a malformed one stops the run at its ``file:line`` instead of failing while training.
"""
import json
from typing import Any

from .errors import RowError

TOOL_ROLES = {'tool_response': 'tool', 'function_call': 'tool_call'}


def parse_tools(value: Any) -> list[dict] | None:
    """The row's tools as a list of function specs (None when the row has none)."""
    if value is None or value == '' or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RowError(f"field 'tools' is not valid JSON: {err}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(f"field 'tools' must be a list of function specs, got {type(value).__name__}")
    for i, tool in enumerate(value):
        spec = tool.get('function', tool) if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get('name'), str):
            raise RowError(f"tools[{i}] must be a function spec with a 'name' "
                           '({"type": "function", "function": {"name": ..., "parameters": ...}})')
    return value


def expand_tool_calls(message: dict, where: str) -> list[dict]:
    """An OpenAI assistant message with ``tool_calls`` as its text (if any) plus one ``tool_call`` message per
    call; other messages unchanged but for ms-swift's role aliases."""
    role = TOOL_ROLES.get(message['role'], message['role'])
    message = {**message, 'role': role}
    calls = message.pop('tool_calls', None)
    if not calls:
        return [message]
    if role != 'assistant' or not isinstance(calls, list):
        raise RowError(f"{where}: 'tool_calls' must be a list on an assistant message")
    out = [message] if message.get('content') else []
    for i, call in enumerate(calls):
        function = call.get('function', call) if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise RowError(f'{where}.tool_calls[{i}] must be an object with a function')
        out.append({'role': 'tool_call', 'content': _call_text(function, f'{where}.tool_calls[{i}]')})
    return out


def check_tool_calls(messages: list[dict]) -> None:
    """Each ``tool_call`` message holds a call with a name and object arguments (its content rewritten as JSON
    text when it was an object)."""
    for i, message in enumerate(messages):
        if message['role'] == 'tool_call':
            message['content'] = _call_text(message['content'], f'messages[{i}] (tool_call)')


def _call_text(call: Any, where: str) -> str:
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except json.JSONDecodeError as err:
            raise RowError(f'{where}: the tool call is not valid JSON ({err}); expected '
                           '{"name": ..., "arguments": {...}}') from None
    if not isinstance(call, dict) or not isinstance(call.get('name'), str) or not call['name']:
        raise RowError(f'{where}: a tool call needs a "name" string; expected {{"name": ..., "arguments": {{...}}}}')
    arguments = call.get('arguments', call.get('parameters', {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as err:
            raise RowError(f'{where}: the arguments of {call["name"]!r} are not valid JSON ({err})') from None
    if not isinstance(arguments, dict):
        raise RowError(f'{where}: the arguments of {call["name"]!r} must be a JSON object')
    return json.dumps({'name': call['name'], 'arguments': arguments}, ensure_ascii=False)
