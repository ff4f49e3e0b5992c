"""The mesh's skills as MCP tools: a live agent's skill is the tool ``<agent>.<skill>``.

A tool's input schema is the skill's input schema from the agent's card. MCP
wants an object at the root: a skill taking an object (a ``msgspec.Struct``)
takes the tool's arguments as its input; any other skill (a text, a number, a
list) takes the argument ``input``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_types import Tool

from agents.card import SkillSchema
from agents.registry import LiveAgent
from bus import subjects

__all__ = ["SkillTool", "skill_tools"]

_WRAPPED = "input"


@dataclass(frozen=True, slots=True)
class SkillTool:
    """One skill of a live agent, as an MCP tool.

    Attributes:
        agent, skill: what a call of the tool calls.
        streaming: the skill streams (a call reports each chunk as progress).
        wrapped: the skill's input is the argument ``input``, not the arguments object.
        tool: the tool as listed.
    """

    agent: str
    skill: str
    streaming: bool
    wrapped: bool
    tool: Tool

    @property
    def name(self) -> str:
        return self.tool.name

    def input_of(self, arguments: dict[str, Any] | None) -> object:
        """The skill's input from a call's arguments.

        Raises:
            ValueError: a wrapped input is missing, or other arguments came with it.
        """
        arguments = arguments or {}
        if not self.wrapped:
            return arguments
        if _WRAPPED not in arguments:
            raise ValueError(f"the argument {_WRAPPED!r} is required")
        extra = sorted(set(arguments) - {_WRAPPED})
        if extra:
            raise ValueError(f"unexpected arguments {extra}: the only argument is {_WRAPPED!r}")
        return arguments[_WRAPPED]


def tool_name(agent: str, skill: str) -> str:
    """The MCP name of ``agent``'s ``skill``."""
    return f"{agent}.{skill}"


def parse_tool_name(name: str) -> tuple[str, str] | None:
    """The (agent, skill) a tool name calls, or ``None`` if it cannot name one."""
    agent, dot, skill = name.partition(".")
    try:
        return (subjects.token("agent", agent), subjects.token("skill", skill)) if dot else None
    except ValueError:
        return None


def skill_tools(agents: list[LiveAgent]) -> dict[str, SkillTool]:
    """The tools of ``agents``' skills, by name."""
    tools: dict[str, SkillTool] = {}
    for agent in agents:
        schemas = agent.card.skill_schemas()
        for skill in agent.card.skills:
            schema = schemas.get(skill.id, SkillSchema())
            input_schema, wrapped = _input_schema(schema.input)
            name = tool_name(agent.name, skill.id)
            tools[name] = SkillTool(
                agent=agent.name,
                skill=skill.id,
                streaming=schema.streaming,
                wrapped=wrapped,
                tool=Tool(
                    name=name,
                    title=f"{agent.name}: {skill.name}",
                    description=f"{skill.description} (skill {skill.id!r} of agent {agent.name!r}: "
                    f"{agent.card.description})",
                    input_schema=input_schema,
                ),
            )
    return tools


def _input_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The tool's input schema and whether the skill's input is wrapped in ``input``."""
    root = _resolved_root(schema)
    if root.get("type") == "object":
        return root, False
    defs = root.pop("$defs", None)
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {_WRAPPED: root or {"description": "any JSON value"}},
        "required": [_WRAPPED],
        "additionalProperties": False,
    }
    if defs:
        wrapper["$defs"] = defs
    return wrapper, True


def _resolved_root(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the definition its root ``$ref`` names at the root (msgspec's form refers)."""
    ref = schema.get("$ref")
    defs = schema.get("$defs") or {}
    name = ref.rpartition("/")[2] if isinstance(ref, str) else ""
    if not name or name not in defs:
        return dict(schema)
    # Every definition stays: the root's may refer to itself.
    return {**defs[name], "$defs": defs}
