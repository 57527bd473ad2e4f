"""What every agent template shares: turning a conversation with tools into plain chat turns, and reading tool
calls back out of a model's answer.

A conversation arrives in ms-swift's agent form (the dataset layer and the server both produce it): roles
``system``, ``user``, ``assistant``, ``tool_call`` (content: ``{"name": ..., "arguments": ...}`` as JSON text) and
``tool`` (a tool's result). ``agent_conversation`` writes the tools into the system prompt and the calls into the
assistant's turn, as the agent template says; the chat template then renders ordinary turns.
"""
import ast
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]


@dataclass
class ToolCall:
    """One call read from an answer. ``arguments`` is JSON text, as OpenAI's ``function.arguments`` is."""
    name: str
    arguments: str


def parse_json(text: Any) -> Any:
    """JSON text as an object; Python literals too (react templates write arguments as Python dicts); None when
    it is neither. Objects pass unchanged."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None


def call_of(content: Any) -> dict:
    """``{'name', 'arguments'}`` of a ``tool_call`` message's content; arguments as an object where they parse.
    ValueError when it is not a call (the dataset layer has already said where, for training rows)."""
    call = parse_json(content)
    if not isinstance(call, dict) or not isinstance(call.get('name'), str):
        raise ValueError(f'a tool call must be a JSON object with a "name", got {str(content)[:80]!r}')
    arguments = call.get('arguments', call.get('parameters', {}))
    parsed = parse_json(arguments)
    return {'name': call['name'], 'arguments': arguments if parsed is None else parsed}


def arguments_text(arguments: Any) -> str:
    """Arguments as OpenAI's JSON text."""
    parsed = parse_json(arguments)
    if parsed is None:
        return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return json.dumps(parsed, ensure_ascii=False)


def unwrap_tool(tool: dict) -> dict:
    """OpenAI's ``{'type': 'function', 'function': {...}}`` or the bare function spec: the function spec."""
    return tool['function'] if isinstance(tool.get('function'), dict) else tool


def wrap_tool(tool: dict) -> dict:
    return tool if 'function' in tool else {'type': 'function', 'function': tool}


class AgentTemplate(ABC):
    """One tool-calling format. Subclasses say how tools, calls and results are written and how calls are read."""
    # Words that end an answer once the model has called a tool (react's 'Observation:'), added at inference.
    stop_words: tuple[str, ...] = ()
    # True: tool results continue the assistant's turn (react); False: they form a turn of their own (hermes).
    results_in_turn = False

    @abstractmethod
    def format_tools(self, tools: list[dict], system: str | None) -> str:
        """The system prompt: ``system`` with the tools described."""

    @abstractmethod
    def format_calls(self, calls: list[dict]) -> str:
        """The assistant text of consecutive calls, each ``{'name', 'arguments'}``."""

    @abstractmethod
    def format_results(self, results: list[str]) -> list[tuple[str, bool]]:
        """Text pieces for consecutive tool results, each with whether it carries loss: a turn of their own
        (``results_in_turn`` False, one user turn) or the continuation of the assistant's turn."""

    @abstractmethod
    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """An answer as its text content (None when only calls remain) and the tool calls in it."""

    @abstractmethod
    def forced_prefix(self, name: str | None) -> str:
        """What an answer starts with when OpenAI's ``tool_choice`` demands a call (of ``name``, or of any tool)."""


def join_text(text: str, more: str) -> str:
    """Assistant text followed by more of it (a call after prose), a newline between them as Qwen's templates put."""
    if text and more and not text.endswith('\n'):
        return text + '\n' + more
    return text + more


def agent_conversation(messages: list[dict], tools: list[dict] | None, agent: AgentTemplate,
                       default_system: str | None) -> list[dict]:
    """``messages`` with the tools in the system prompt and calls and results written out by ``agent``.

    Assistant turns may carry ``untrained``: character ranges of their content that take no loss (results inside a
    react turn). Result turns of their own carry ``tool_response`` (not a new question: Qwen3 keeps reasoning
    after the last real question). Conversations without tools or calls pass unchanged.
    """
    if not tools and not any(m['role'] in ('tool_call', 'tool_response') for m in messages):
        return messages
    system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else None
    rest = messages[1:] if system is not None else messages
    out = []
    if tools:
        out.append({'role': 'system', 'content': agent.format_tools(tools, system or default_system)})
    elif system is not None:
        out.append(messages[0])
    i = 0
    while i < len(rest):
        role = rest[i]['role']
        j = _run_end(rest, i)
        if role in ('assistant', 'tool_call'):
            _add_assistant(out, rest[i:j], agent)
        elif role in ('tool', 'tool_response'):
            _add_results(out, [m['content'] for m in rest[i:j]], agent)
        else:
            out.extend(rest[i:j])
        i = j
    return out


# Roles whose consecutive messages form one piece: an assistant's text and calls, a batch of tool results.
_RUNS = {'assistant': ('assistant', 'tool_call'), 'tool_call': ('assistant', 'tool_call'),
         'tool': ('tool', 'tool_response'), 'tool_response': ('tool', 'tool_response')}


def _run_end(messages: list[dict], start: int) -> int:
    together = _RUNS.get(messages[start]['role'], ())
    end = start + 1
    while end < len(messages) and messages[end]['role'] in together:
        end += 1
    return end


def _add_assistant(out: list[dict], run: list[dict], agent: AgentTemplate) -> None:
    text, calls = '', []
    for message in run:
        if message['role'] == 'tool_call':
            calls.append(call_of(message['content']))
            continue
        if calls:
            text, calls = join_text(text, agent.format_calls(calls)), []
        text = join_text(text, message['content'])
    if calls:
        text = join_text(text, agent.format_calls(calls))
    loss = next((m['loss'] for m in run if m.get('loss') is not None), None)
    if out and out[-1].get('continued'):  # react: the answer goes on in the turn that called the tool
        previous = out[-1]
        previous['content'] += text
        previous.pop('continued')
        if loss is not None:
            previous['loss'] = loss
        return
    turn = {'role': 'assistant', 'content': text, 'untrained': []}
    if loss is not None:
        turn['loss'] = loss
    reasoning = next((m['reasoning_content'] for m in run if m.get('reasoning_content')), None)
    if reasoning is not None:  # Qwen3: the turn's reasoning, written as its <think> block
        turn['reasoning_content'] = reasoning
    out.append(turn)


def _add_results(out: list[dict], results: list[str], agent: AgentTemplate) -> None:
    pieces = agent.format_results(results)
    if agent.results_in_turn and out and out[-1]['role'] == 'assistant':
        turn = out[-1]
        for text, trained in pieces:
            if not trained:
                turn['untrained'].append((len(turn['content']), len(turn['content']) + len(text)))
            turn['content'] += text
        turn['continued'] = True
        return
    out.append({'role': 'user', 'content': ''.join(text for text, _ in pieces), 'tool_response': True})
