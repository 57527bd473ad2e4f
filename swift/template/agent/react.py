"""ReAct tool calling (``--agent_template react_en`` / ``react_zh``): tools described in prose, each call written
``Action: name`` / ``Action Input: arguments``, results after ``Observation:`` in the same assistant turn, as
ms-swift writes them (arguments as Python's repr of the object, which the parser reads back as well as JSON)."""
import json
import re

from .base import AgentTemplate, ToolCall, arguments_text, unwrap_tool
from .registry import register_agent_template

ACTION = re.compile(r'Action:[ \t]*(.+?)[ \t]*\nAction Input:[ \t]*(.+?)[ \t]*(?=\nAction:|\n?Observation:|\Z)',
                    re.DOTALL)
OBSERVATION = 'Observation:'

EN = {
    'head': 'Answer the following questions as best you can. You have access to the following tools:\n\n',
    'tool': ('{name}: Call this tool to interact with the {name} API. What is the {name} API useful for? '
             '{description} Parameters: {parameters} Format the arguments as a JSON object.'),
    'format': """

Use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action: the action to take, should be one of [{names}]
Action Input: the input to the action
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can be repeated zero or more times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin!
"""}
ZH = {
    'head': '尽可能地回答以下问题。你可以使用以下工具:\n\n',
    'tool': '{name}: 调用此工具与 {name} API 进行交互。{name} 有什么用？{description} 输入参数：{parameters} 此工具的输入应为JSON对象。',
    'format': """

请按照以下格式进行:

Question: 需要你回答的输入问题
Thought: 你应该总是思考该做什么
Action: 需要使用的工具，应该是[{names}]中的一个
Action Input: 传入工具的内容
Observation: 行动的结果
... (这个Thought/Action/Action Input/Observation可以重复N次)
Thought: 我现在知道最后的答案
Final Answer: 对原始输入问题的最终答案

现在开始！
"""}


class ReactEnAgentTemplate(AgentTemplate):
    texts = EN
    stop_words = (OBSERVATION,)
    results_in_turn = True

    def format_tools(self, tools: list[dict], system: str | None) -> str:
        # As ms-swift: the react prompt replaces the system prompt.
        specs = [unwrap_tool(tool) for tool in tools]
        described = [self.texts['tool'].format(name=spec['name'], description=spec.get('description', ''),
                                               parameters=_parameters(spec)) for spec in specs]
        return (self.texts['head'] + '\n\n'.join(described)
                + self.texts['format'].format(names=','.join(spec['name'] for spec in specs)))

    def format_calls(self, calls: list[dict]) -> str:
        return ''.join(f"Action: {call['name']}\nAction Input: {call['arguments']}\n" for call in calls) + OBSERVATION

    def format_results(self, results: list[str]) -> list[tuple[str, bool]]:
        pieces = []
        for i, result in enumerate(results):
            text = (OBSERVATION if i else '') + result
            pieces.append((text if text.endswith('\n') else text + '\n', False))
        return pieces

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        found = list(ACTION.finditer(text))
        if not found:
            return text, []
        calls = [ToolCall(match.group(1).strip(), arguments_text(match.group(2).strip())) for match in found]
        content = text[:found[0].start()].strip()
        return content or None, calls

    def forced_prefix(self, name: str | None) -> str:
        return 'Action:' if name is None else f'Action: {name}\nAction Input:'  # the model writes the space


class ReactZhAgentTemplate(ReactEnAgentTemplate):
    texts = ZH


def _parameters(spec: dict) -> str:
    parameters = spec.get('parameters') or {}
    return parameters if isinstance(parameters, str) else json.dumps(parameters, ensure_ascii=False)


register_agent_template('react_en', ReactEnAgentTemplate)
register_agent_template('react_zh', ReactZhAgentTemplate)
