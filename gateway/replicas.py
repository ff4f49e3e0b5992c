"""Each agent's live replicas, as the gateway reads the registry: what alerts on an agent that is down.

A Prometheus series that vanishes cannot alert, so an agent keeps being
reported after its last replica is gone, with 0, for ``remember`` seconds
after a read last found it live; then it is forgotten (and so is the least
recently live agent beyond ``limit`` of them). The registry is read every
``interval`` seconds in the background, because OpenTelemetry collects
gauges synchronously; while a read fails (NATS is unreachable) nothing is
reported, since unknown is not zero.

A meter provider keeps the first instrument made under a name and drops the
callbacks of any later one, so the gauge is made once per provider and
reports every :class:`AgentReplicas` started on it (the highest count of each
agent, should several gateways share one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterable

import nats.errors
import nats.js.errors
from opentelemetry import metrics

from agents.registry import Registry
from bus.errors import BusError

__all__ = ["AgentReplicas"]

log = logging.getLogger(__name__)

# What a read of the registry fails with while NATS is unreachable.
_UNREADABLE = (BusError, nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError)


class AgentReplicas:
    """The live replicas of every agent seen lately, read from ``registry`` every ``interval`` seconds."""

    def __init__(
        self,
        registry: Registry,
        meter_provider: metrics.MeterProvider,
        *,
        interval: float,
        remember: float = 3600.0,
        limit: int = 1000,
    ) -> None:
        """Args:
        interval: seconds between reads of the registry.
        remember: seconds an agent without a live replica is still reported, with 0.
        limit: agents remembered at most (the least recently live are forgotten first).
        """
        self._registry = registry
        self._provider = meter_provider
        self._interval = interval
        self._remember = remember
        self._limit = limit
        # Agent name -> replicas at the last read (absent: none).
        self._live: dict[str, int] = {}
        # Agent name -> when a read last found it live (monotonic), least recent first.
        self._seen: dict[str, float] = {}
        self._known = False  # whether the last read succeeded
        self._task: asyncio.Task[None] | None = None

    def counts(self) -> dict[str, int] | None:
        """Replicas by agent, 0 for one seen live within ``remember`` seconds; ``None``: not read yet, or
        the last read failed."""
        if not self._known:
            return None
        now = time.monotonic()
        return {
            name: self._live.get(name, 0) for name, seen in self._seen.items() if now - seen <= self._remember
        }

    async def read(self) -> None:
        """Read the registry once.

        Raises:
            BusError, nats.errors.Error, TimeoutError, OSError: the registry could not be read.
        """
        try:
            live = {agent.name: agent.replicas for agent in await self._registry.agents()}
        except _UNREADABLE:
            self._known = False
            raise
        now = time.monotonic()
        for name in live:
            self._seen.pop(name, None)
            self._seen[name] = now
        while self._seen and (
            len(self._seen) > self._limit or now - next(iter(self._seen.values())) > self._remember
        ):
            del self._seen[next(iter(self._seen))]
        self._live = live
        self._known = True

    def start(self) -> None:
        """Report from now on: read now and every ``interval`` seconds until :meth:`stop`."""
        if self._task is None:
            _gauge(self._provider).sources.add(self)
            self._task = asyncio.create_task(self._poll(), name="metrics-agent-replicas")

    async def stop(self) -> None:
        """Stop reading and reporting."""
        _gauge(self._provider).sources.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            try:
                await self.read()
            except _UNREADABLE as exc:
                log.debug("the registry was not read for the replicas gauge (%s)", exc)
            await asyncio.sleep(self._interval)


class _Gauge:
    """The instrument of one meter provider, reporting every source started on it."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.sources: set[AgentReplicas] = set()
        meter.create_observable_gauge(
            "hivewire.mesh.agent.replicas",
            callbacks=[self._observe],
            unit="{replica}",
            description="Live replicas of the agent in the registry; 0 for a while after its last one went "
            "(HIVEWIRE_GATEWAY_AGENT_MEMORY), so that an alert can see it.",
        )

    def _observe(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        found: dict[str, int] = {}
        for source in list(self.sources):
            for name, replicas in (source.counts() or {}).items():
                found[name] = max(replicas, found.get(name, replicas))
        return [metrics.Observation(replicas, {"agent": name}) for name, replicas in sorted(found.items())]


_BY_PROVIDER: weakref.WeakKeyDictionary[metrics.MeterProvider, _Gauge] = weakref.WeakKeyDictionary()


def _gauge(provider: metrics.MeterProvider) -> _Gauge:
    gauge = _BY_PROVIDER.get(provider)
    if gauge is None:
        gauge = _BY_PROVIDER[provider] = _Gauge(provider.get_meter("hivewire.gateway"))
    return gauge
