"""Agent templates by ms-swift's name (``--agent_template hermes``)."""
from ...utils import SwiftError
from .base import AgentTemplate

AGENT_TEMPLATES: dict[str, type[AgentTemplate]] = {}


def register_agent_template(name: str, cls: type[AgentTemplate]) -> None:
    if name in AGENT_TEMPLATES:
        raise ValueError(f'agent template {name!r} is registered twice')
    AGENT_TEMPLATES[name] = cls


def get_agent_template(name: str) -> AgentTemplate:
    if name not in AGENT_TEMPLATES:
        raise SwiftError(f"--agent_template {name!r} is not built; choose one of {', '.join(sorted(AGENT_TEMPLATES))}")
    return AGENT_TEMPLATES[name]()
