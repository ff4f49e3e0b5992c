"""Which agents a request can reach: live agents and their skills, from the registry, or a 404."""

from __future__ import annotations

from agents.registry import LiveAgent, Registry
from gateway.problems import Problem

__all__ = ["live_agent"]


async def live_agent(
    registry: Registry, name: str, skill: str | None = None, *, tenant: str | None = None
) -> LiveAgent:
    """The live agent ``name`` (that has ``skill``, and serves ``tenant``, when given).

    Raises:
        Problem: 404, no such agent is running (for ``tenant``), or it has no such skill.
    """
    agent = await registry.get(name, tenant)
    if agent is None:
        raise Problem(404, "agent-not-found", "No such agent", f"no agent named {name!r} is running")
    if skill is not None and agent.card.skill(skill) is None:
        raise Problem(404, "skill-not-found", "No such skill", f"agent {name!r} has no skill {skill!r}")
    return agent
