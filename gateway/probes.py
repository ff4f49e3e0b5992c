"""What the health probes answer: the process is up (``/healthz``); the mesh is reachable (``/readyz``)."""

from __future__ import annotations

import asyncio

import msgspec

from agents.redisstore import RedisStore
from agents.registry import Registry
from bus.client import Bus

__all__ = ["Checks", "Health", "Readiness", "readiness"]


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The process is up and serving."""

    status: str = "ok"


class Checks(msgspec.Struct, frozen=True, kw_only=True):
    """Each dependency as the gateway sees it."""

    bus: bool = False
    registry: bool = False
    redis: str = "not configured"  # or "up", or "down (in-process fallback)"


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Ready: the bus is connected and the registry readable (Redis down only degrades)."""

    ready: bool
    checks: Checks


async def readiness(bus: Bus | None, registry: Registry | None, redis: RedisStore | None) -> Readiness:
    """Check the gateway's dependencies (``None``: not started yet)."""
    if bus is None or registry is None or redis is None:
        return Readiness(ready=False, checks=Checks())
    try:
        await asyncio.wait_for(registry.agents(), timeout=2.0)
        readable = True
    except Exception:  # noqa: BLE001 - any failure means not ready
        readable = False
    redis_state = "not configured"
    if redis.configured:
        # Redis down degrades (in-process limits), it does not make the gateway unready.
        redis_state = "up" if await redis.ping() else "down (in-process fallback)"
    checks = Checks(bus=bus.is_connected, registry=readable, redis=redis_state)
    return Readiness(ready=checks.bus and checks.registry, checks=checks)
