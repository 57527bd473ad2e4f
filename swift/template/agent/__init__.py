"""Agent templates (ms-swift's ``--agent_template``): how a row's ``tools`` and its ``tool_call`` / ``tool``
messages are written into a chat template's turns, and how a model's answer is read back into tool calls.

One module per format, each registering its names here; ``get_agent_template`` gives one by name.
"""
from .base import AgentTemplate, ToolCall, agent_conversation
from .registry import AGENT_TEMPLATES, get_agent_template, register_agent_template
from . import hermes, react  # noqa: F401,E402  register the built-in formats
