"""Tool calling at inference: OpenAI's ``tools`` / ``tool_choice`` into the prompt, ``tool_calls`` out of the answer.

The agent template (``--agent_template``, or the family's own) writes the tools into the system prompt and reads
the calls back out of the generated text with its parser. ``tool_choice`` 'none' leaves the tools out; 'required'
or a named function starts the answer with the template's call syntax, so the model has to call.
"""
import dataclasses
from dataclasses import dataclass

from ..dataset import RowError
from ..dataset.tools import check_tool_calls, expand_tool_calls, parse_tools
from ..protocol import (ChatCompletionMessageToolCall, ChatCompletionResponse, DeltaToolCall, Function, InferRequest)
from ..template.agent import AgentTemplate
from ..utils import SwiftError


@dataclass
class ToolUse:
    """How one request uses tools: the specs in its prompt and the text its answer was started with."""
    tools: list[dict]
    prefix: str = ''


def conversation(request: InferRequest) -> list[dict]:
    """The request's messages in the agent form the template reads: an assistant message's OpenAI ``tool_calls``
    as ``tool_call`` messages, each checked. SwiftError (a 400 from the server) for a malformed call."""
    if not any(m.get('tool_calls') or m.get('role') in ('tool_call', 'tool_response') for m in request.messages):
        return request.messages
    try:
        messages = [out for i, message in enumerate(request.messages)
                    for out in expand_tool_calls({**message, 'content': message.get('content') or ''},
                                                 f'messages[{i}]')]
        check_tool_calls(messages)
    except RowError as err:
        raise SwiftError(str(err)) from None
    return messages


def tool_use(request: InferRequest, agent: AgentTemplate) -> ToolUse | None:
    """None when the request offers no tools (or tool_choice 'none'); else its tools and forced prefix."""
    try:
        tools = parse_tools(request.tools)
    except RowError as err:
        raise SwiftError(str(err).replace("field 'tools'", 'tools')) from None
    choice = request.tool_choice
    if not tools or choice in (None, 'auto', 'none'):
        return None if not tools or choice == 'none' else ToolUse(tools)
    if choice == 'required':
        return ToolUse(tools, agent.forced_prefix(None))
    name = (choice.get('function') or {}).get('name') if isinstance(choice, dict) else None
    if name is None:
        raise SwiftError(f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', 'function': "
                         f"{{'name': ...}}}}, got {choice!r}")
    if name not in {tool.get('function', tool).get('name') for tool in tools}:
        raise SwiftError(f'tool_choice names {name!r}, which is not among the tools')
    return ToolUse(tools, agent.forced_prefix(name))


def with_tool_calls(response: ChatCompletionResponse, agent: AgentTemplate, use: ToolUse | None
                    ) -> ChatCompletionResponse:
    """``response`` with the tool calls of each choice's text as ``message.tool_calls`` (finish_reason
    'tool_calls') and the text before them as the content. Unchanged without tools or calls."""
    if use is None:
        return response
    choices = []
    for choice in response.choices:
        content, calls = agent.parse(use.prefix + (choice.message.content or ''))
        if not calls:
            choices.append(choice)
            continue
        message = dataclasses.replace(choice.message, content=content, tool_calls=[
            ChatCompletionMessageToolCall(Function(call.name, call.arguments)) for call in calls])
        choices.append(dataclasses.replace(choice, message=message, finish_reason='tool_calls'))
    return dataclasses.replace(response, choices=choices)


def delta_tool_calls(calls: list[ChatCompletionMessageToolCall] | None) -> list[DeltaToolCall] | None:
    """A whole answer's calls as the last chunk of a stream carries them."""
    if not calls:
        return None
    return [DeltaToolCall(i, call.function, call.id) for i, call in enumerate(calls)]
