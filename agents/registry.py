"""Live discovery: every running replica keeps its card in a key-value bucket by heartbeat.

Each replica writes ``<agent>.<instance>`` every heartbeat interval; the
bucket's TTL removes the entry of a replica that stops beating (killed,
partitioned, hung), and a replica that stops cleanly removes its own entry.
Readers group the entries by agent: several replicas show as one agent.

The bucket lives in memory, so a restarted NATS server has lost it: each
replica beats again as soon as its connection is back (:meth:`Heartbeat.wake`),
not a heartbeat interval later, and readers remember when they last saw each
agent (:meth:`Registry.last_seen`), so a front door can tell an agent that is
gone from one that has not announced itself again yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from agents.card import AgentCard
from agents.infrastructure import entries
from bus import subjects
from bus.codec import Codec
from bus.errors import MalformedPayload

__all__ = ["Heartbeat", "Instance", "LiveAgent", "Load", "Registry"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Load(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a replica is doing, as of its last heartbeat."""

    in_flight: int = 0
    handled: int = 0
    failed: int = 0


class Instance(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One running replica of an agent, as it announces itself."""

    agent: str
    instance: str
    card: AgentCard
    host: str = ""
    pid: int = 0
    started_at: float = 0.0
    beat_at: float = 0.0
    load: Load = msgspec.field(default_factory=Load)
    # The tenants it serves; empty: every tenant.
    tenants: tuple[str, ...] = ()


class LiveAgent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An agent with at least one live replica."""

    name: str
    card: AgentCard
    replicas: int
    load: Load
    instances: tuple[Instance, ...]
    tenants: tuple[str, ...] = ()

    def serves(self, tenant: str | None) -> bool:
        """Whether a caller of ``tenant`` may know of this agent and call it; ``None``: a caller of no
        tenant (an anonymous request), who may know only of the agents that serve every tenant."""
        return not self.tenants or tenant in self.tenants


class Registry:
    """Reads and writes the registry bucket."""

    def __init__(
        self,
        kv: KeyValue,
        codec: Codec,
        *,
        ttl: float,
        cache_ttl: float = 0.0,
        recreate: Callable[[], Awaitable[KeyValue]] | None = None,
    ) -> None:
        """Args:
        ttl: how long a replica counts as live after its last beat.
        cache_ttl: seconds a read of every replica is reused (0: read each time);
            a front door such as the gateway looks agents up on many requests.
        recreate: makes the bucket again when it is gone. It lives in memory, so a
            NATS restart loses it; the next beat or read brings it back.
        """
        self._recreate = recreate
        self._kv = kv
        self._codec = codec
        self.ttl = ttl
        self._cache_ttl = cache_ttl
        self._cached: tuple[float, list[Instance]] | None = None
        # Agent name -> when a read last found it live (monotonic) and the tenants it served then
        # (empty: every tenant), least recent first.
        self._seen: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def announce(self, instance: Instance) -> None:
        """Write (or refresh) ``instance``'s entry."""
        key, value = subjects.registry_key(instance.agent, instance.instance), self._codec.encode(instance)
        await self._with_bucket(lambda kv: kv.put(key, value))

    async def withdraw(self, agent: str, instance: str) -> None:
        """Remove a replica's entry (on clean shutdown)."""
        await self._kv.delete(subjects.registry_key(agent, instance))

    async def instances(self, agent: str | None = None) -> list[Instance]:
        """Every live replica (of ``agent`` only, if given)."""
        if self._cache_ttl > 0:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self._cache_ttl:
                self._cached = (now, await self._read(">"))
            every = self._cached[1]
            return every if agent is None else [i for i in every if i.agent == subjects.token("agent", agent)]
        return await self._read(">" if agent is None else f"{subjects.token('agent', agent)}.*")

    async def _read(self, pattern: str) -> list[Instance]:
        now = time.time()
        found = []
        for entry in await self._with_bucket(lambda kv: entries(kv, pattern)):
            try:
                instance = self._codec.decode(entry.value or b"", Instance)
            except MalformedPayload as exc:
                log.warning("ignoring a malformed registry entry %s: %s", entry.key, exc)
                continue
            # The bucket's TTL removes stale entries; this also covers a bucket
            # created with a longer TTL than this process's settings.
            if now - instance.beat_at <= self.ttl:
                found.append(instance)
        self._saw(found)
        return found

    def last_seen(self, agent: str, tenant: str | None) -> float | None:
        """When (``time.monotonic()``) a read of this registry last found ``agent`` live, serving
        ``tenant`` (as :meth:`LiveAgent.serves` reads it); ``None``: never (or too long ago to be
        remembered), or it served other tenants only, whose callers must not learn of it, not
        even while the bus recovers."""
        found = self._seen.get(agent)
        if found is None or (found[1] and tenant not in found[1]):
            return None
        return found[0]

    def _saw(self, instances: list[Instance]) -> None:
        now = time.monotonic()
        for instance in instances:
            self._seen.pop(instance.agent, None)
            self._seen[instance.agent] = (now, instance.tenants)
        while len(self._seen) > _SEEN_REMEMBERED:
            del self._seen[next(iter(self._seen))]

    async def _with_bucket(self, operation: Callable[[KeyValue], Awaitable[T]]) -> T:
        try:
            return await operation(self._kv)
        except (
            nats.js.errors.NotFoundError,
            nats.errors.NoRespondersError,
            nats.js.errors.NoStreamResponseError,
        ):
            # The bucket's stream is gone (a restarted NATS loses memory streams): a read finds
            # no stream, a write finds nobody to store it.
            if self._recreate is None:
                raise
            log.warning("the registry bucket is gone (NATS restarted?); creating it again")
            self._kv = await self._recreate()
            return await operation(self._kv)

    async def agents(self) -> list[LiveAgent]:
        """Every live agent, whichever tenants it serves (see :meth:`LiveAgent.serves`), each with
        its replica count and summed load, by name."""
        by_name: dict[str, list[Instance]] = {}
        for instance in await self.instances():
            by_name.setdefault(instance.agent, []).append(instance)
        return [_live(name, group) for name, group in sorted(by_name.items())]

    async def get(self, agent: str) -> LiveAgent | None:
        """The live agent called ``agent`` (whichever tenants it serves), or ``None`` if no replica
        is running."""
        group = await self.instances(agent)
        return _live(agent, group) if group else None


# Agents whose last sighting a registry reader remembers (the least recently seen are forgotten).
_SEEN_REMEMBERED = 10_000

# The first retry of a beat that failed right after a reconnect (doubling up to the interval):
# the server's JetStream may still be loading its streams.
_FIRST_RETRY = 0.05


def _live(name: str, group: list[Instance]) -> LiveAgent:
    # Replicas of one agent can differ during a rolling upgrade: show the newest card.
    newest = max(group, key=lambda i: i.started_at)
    return LiveAgent(
        name=name,
        card=newest.card,
        replicas=len(group),
        load=Load(
            in_flight=sum(i.load.in_flight for i in group),
            handled=sum(i.load.handled for i in group),
            failed=sum(i.load.failed for i in group),
        ),
        instances=tuple(sorted(group, key=lambda i: i.instance)),
        tenants=newest.tenants,
    )


class Heartbeat:
    """Announces one replica every ``interval`` seconds until stopped, then withdraws it."""

    def __init__(
        self,
        registry: Registry,
        *,
        agent: str,
        instance: str,
        card: AgentCard,
        interval: float,
        load: Callable[[], Load],
        tenants: tuple[str, ...] = (),
    ) -> None:
        self._registry = registry
        self._interval = interval
        self._load = load
        self._template = Instance(
            agent=agent,
            instance=instance,
            card=card,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=time.time(),
            tenants=tenants,
        )
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def start(self) -> None:
        """Announce now (so the agent is listed when this returns), then keep beating."""
        await self._beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self._template.agent}")

    def wake(self) -> None:
        """Beat now rather than at the next interval, retrying quickly until a beat gets through
        (call it when the connection comes back: a restarted server lost the registry)."""
        self._woken.set()

    async def stop(self) -> None:
        """Stop beating and remove the entry."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(nats.errors.Error):
            await self._registry.withdraw(self._template.agent, self._template.instance)

    async def _beat(self) -> None:
        instance = msgspec.structs.replace(self._template, beat_at=time.time(), load=self._load())
        await self._registry.announce(instance)

    async def _run(self) -> None:
        delay = self._interval
        failed = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._woken.wait()
            woken = self._woken.is_set()
            self._woken.clear()
            try:
                await self._beat()
            except (nats.errors.Error, OSError) as exc:
                # A missed beat while NATS is unreachable; the next one catches up.
                if failed == 0:
                    log.warning("heartbeat of %s failed: %s", self._template.agent, exc)
                failed += 1
                if woken or delay < self._interval:
                    # Back after a reconnect: try again soon, not an interval later.
                    delay = min(self._interval, _FIRST_RETRY * 2 ** min(failed, 16))
                continue
            if failed:
                log.info("heartbeat of %s resumed after %d missed beats", self._template.agent, failed)
            failed = 0
            delay = self._interval
