"""Hermes tool calling (``--agent_template hermes``), the format of Qwen2.5's and Qwen3's own chat templates:
tools as JSON lines inside ``<tools>``, each call a JSON object inside ``<tool_call>``, results inside
``<tool_response>`` in a user turn."""
import json
import re

from .base import AgentTemplate, ToolCall, arguments_text, parse_json, wrap_tool
from .registry import register_agent_template

TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""
CALL = re.compile(r'<tool_call>(.+?)</tool_call>', re.DOTALL)


class HermesAgentTemplate(AgentTemplate):

    def format_tools(self, tools: list[dict], system: str | None) -> str:
        lines = '\n'.join(json.dumps(wrap_tool(tool), ensure_ascii=False) for tool in tools)
        prompt = TOOLS_PROMPT.format(tools=lines)
        return f'{system}\n\n{prompt}' if system else prompt

    def format_calls(self, calls: list[dict]) -> str:
        return '\n'.join(f'<tool_call>\n{json.dumps(call, ensure_ascii=False)}\n</tool_call>' for call in calls)

    def format_results(self, results: list[str]) -> list[tuple[str, bool]]:
        return [('\n'.join(f'<tool_response>\n{result}\n</tool_response>' for result in results), False)]

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        calls = []
        for body in CALL.findall(text):
            call = parse_json(body.strip())
            if isinstance(call, dict) and isinstance(call.get('name'), str):
                calls.append(ToolCall(call['name'], arguments_text(call.get('arguments', {}))))
        if not calls:
            return text, []
        content = text[:text.index('<tool_call>')].strip()
        return content or None, calls

    def forced_prefix(self, name: str | None) -> str:
        # no trailing space: the model writes ' {' as one token, as it learned it
        return '<tool_call>\n' if name is None else f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments":'


register_agent_template('hermes', HermesAgentTemplate)
