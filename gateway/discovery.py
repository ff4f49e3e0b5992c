"""Which agents a request can reach: live agents and their skills, from the registry, or a 404.

Every route that names, lists or calls an agent looks it up here, for the
request's tenant: an agent restricted to some tenants (``Agent(tenants=...)``)
is, to any other tenant and to anonymous requests (public cards, the public
OpenAPI document), exactly as absent as an agent that does not exist.

The registry lives in NATS's memory: a restarted server has lost it, and
until every agent has announced itself again (at once, on reconnecting) an
agent this gateway saw a moment ago is missing from it. While the bus
recovers, such an agent is "unavailable, try again" (503 ``bus-unavailable``),
never "no such agent" (404).
"""

from __future__ import annotations

from agents.mesh import Mesh
from agents.registry import LiveAgent
from gateway.problems import Problem, bus_unavailable

__all__ = ["live_agent", "live_agents", "reachable"]


async def live_agents(mesh: Mesh, *, tenant: str | None) -> list[LiveAgent]:
    """The live agents a caller of ``tenant`` may know of (``None``: an anonymous caller), by name."""
    return [agent for agent in await mesh.registry.agents() if agent.serves(tenant)]


async def reachable(mesh: Mesh, name: str, *, tenant: str | None) -> LiveAgent | None:
    """The live agent ``name`` if a caller of ``tenant`` may reach it (``None``: an anonymous caller);
    else ``None``, as for an agent that is not running."""
    agent = await mesh.registry.get(name)
    return agent if agent is not None and agent.serves(tenant) else None


async def live_agent(mesh: Mesh, name: str, skill: str | None = None, *, tenant: str | None) -> LiveAgent:
    """The live agent ``name`` (that has ``skill``, when given), if a caller of ``tenant`` may reach
    it (``None``: an anonymous caller, who reaches only the agents that serve every tenant).

    Raises:
        Problem: 404, no such agent is running for ``tenant``, or it has no such skill; 503,
            the agent was live before the bus went away and has not announced itself since.
    """
    agent = await mesh.registry.get(name)
    if agent is None or not agent.serves(tenant):
        if agent is None and _recovering(mesh, name, tenant):
            raise bus_unavailable(
                f"agent {name!r} was live before the connection to NATS was lost and has not "
                "announced itself again yet; try again in a moment"
            )
        raise Problem(404, "agent-not-found", "No such agent", f"no agent named {name!r} is running")
    if skill is not None and agent.card.skill(skill) is None:
        raise Problem(404, "skill-not-found", "No such skill", f"agent {name!r} has no skill {skill!r}")
    return agent


def _recovering(mesh: Mesh, name: str, tenant: str | None) -> bool:
    """True if ``name`` was live for ``tenant`` shortly before the bus was lost, and the bus is down
    or only just back.

    Within a registry TTL of the reconnect every live replica has beaten again,
    whatever else delayed its first announcement.
    """
    window = mesh.registry.ttl
    lost = mesh.bus.disconnected_at
    seen = mesh.registry.last_seen(name, tenant)
    if lost is None or seen is None or seen < lost - window:
        return False
    return mesh.bus.recovering(window)
