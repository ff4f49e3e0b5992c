"""What an agent replica tells operators beyond its spans: its task backlog, dead letters, connections.

The backlog is the agent's durable-task consumer on ``HW_TASKS`` as JetStream
sees it (every replica reports the same figures: take the ``max`` by agent),
read every few seconds in the background because OpenTelemetry collects
gauges synchronously. Nothing is read while no meter provider collects.

A meter provider keeps the first instrument made under a name and drops the
callbacks of any later one, so the gauges are made once per provider and read
whatever is live in the process: every agent runtime started on it (a process
may run several) and every connection registered with :func:`observe_connections`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterable

import nats.errors
import nats.js.errors
from opentelemetry import metrics

from agents.redisstore import RedisStore
from bus import subjects
from bus.client import Bus
from bus.errors import BusError

__all__ = ["AgentMetrics", "observe_connections"]

log = logging.getLogger(__name__)


class AgentMetrics:
    """The backlog and dead letters of one agent replica, read from JetStream every ``interval`` seconds."""

    def __init__(
        self,
        agent: str,
        bus: Bus,
        meter_provider: metrics.MeterProvider,
        *,
        dead_lettered: Callable[[], int],
        redis: RedisStore | None = None,
        interval: float = 5.0,
    ) -> None:
        """Args:
        dead_lettered: how many tasks this replica has parked in the dead-letter stream so far.
        """
        self.agent = agent
        self._bus = bus
        self._redis = redis
        self._provider = meter_provider
        self._interval = interval
        self.dead_lettered = dead_lettered
        self.pending: int | None = None
        self.unacked: int | None = None
        self.dead_letters: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._forget: Callable[[], None] | None = None

    @property
    def lag(self) -> int | None:
        """Tasks waiting or running (``None``: not read yet, or the last read failed)."""
        if self.pending is None or self.unacked is None:
            return None
        return self.pending + self.unacked

    def start(self) -> None:
        """Report from now on: read the backlog now and every ``interval`` seconds until :meth:`stop`."""
        if self._task is None:
            gauges = _gauges(self._provider)
            gauges.agents.add(self)
            forget_connections = observe_connections(self._provider, self._bus, self._redis)

            def forget() -> None:
                gauges.retire(self)
                forget_connections()

            self._forget = forget
            self._task = asyncio.create_task(self._poll(), name=f"metrics-{self.agent}")

    async def stop(self) -> None:
        """Stop reading and reporting."""
        task, self._task = self._task, None
        forget, self._forget = self._forget, None
        if forget is not None:
            forget()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def read(self) -> None:
        """Read the consumer's and the dead-letter stream's figures once."""
        js = self._bus.jetstream()
        consumer = await js.consumer_info(subjects.TASKS_STREAM, subjects.task_consumer(self.agent))
        self.pending = consumer.num_pending or 0
        self.unacked = consumer.num_ack_pending or 0
        try:
            dlq = await js.stream_info(
                subjects.DEAD_LETTER_STREAM, subjects_filter=subjects.dead_letters_matching(agent=self.agent)
            )
        except nats.js.errors.NotFoundError:
            self.dead_letters = 0
        else:
            self.dead_letters = sum((dlq.state.subjects or {}).values())

    async def _poll(self) -> None:
        while True:
            try:
                await self.read()
            except (BusError, nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                # Unknown is not zero: the gauges go quiet until a read succeeds again.
                self.pending = self.unacked = self.dead_letters = None
                log.debug("agent %s: backlog not read (%s)", self.agent, exc)
            await asyncio.sleep(self._interval)


def observe_connections(
    meter_provider: metrics.MeterProvider, bus: Bus, redis: RedisStore | None
) -> Callable[[], None]:
    """Report whether ``bus`` reaches NATS (and ``redis``, if configured, Redis) until the returned
    function is called. With several registered, a gauge is 1 only while every one is connected."""
    gauges = _gauges(meter_provider)
    key = object()
    gauges.connections[key] = (bus, redis)

    def forget() -> None:
        gauges.connections.pop(key, None)

    return forget


class _Gauges:
    """The instruments of one meter provider, observing every live source registered with them."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.agents: set[AgentMetrics] = set()
        self.connections: dict[object, tuple[Bus, RedisStore | None]] = {}
        self._retired: dict[str, int] = {}  # dead letters counted by replicas that stopped
        meter.create_observable_gauge(
            "hivewire.nats.connected",
            callbacks=[self._nats],
            unit="1",
            description="1 while the process is connected to NATS, 0 while it is reconnecting.",
        )
        meter.create_observable_gauge(
            "hivewire.redis.available",
            callbacks=[self._redis],
            unit="1",
            description="1 while Redis answered at the last attempt, 0 while the process works without it.",
        )
        meter.create_observable_gauge(
            "hivewire.tasks.queue.depth",
            callbacks=[self._by_agent(lambda m: m.pending)],
            unit="{task}",
            description="Durable tasks of the agent waiting for a replica (the consumer's pending).",
        )
        meter.create_observable_gauge(
            "hivewire.tasks.consumer.lag",
            callbacks=[self._by_agent(lambda m: m.lag)],
            unit="{task}",
            description="Durable tasks of the agent waiting or running (what KEDA scales on).",
        )
        meter.create_observable_gauge(
            "hivewire.tasks.dead_letters",
            callbacks=[self._by_agent(lambda m: m.dead_letters)],
            unit="{task}",
            description="Tasks of the agent parked in the dead-letter stream (HW_DLQ), every tenant.",
        )
        meter.create_observable_counter(
            "hivewire.tasks.dead_lettered",
            callbacks=[self._dead_lettered],
            unit="{task}",
            description="Tasks the process's replicas gave up on and parked in the dead-letter stream.",
        )

    def retire(self, agent: AgentMetrics) -> None:
        """Stop observing ``agent``, keeping its count of dead letters (a counter never goes down)."""
        if agent in self.agents:
            self.agents.discard(agent)
            self._retired[agent.agent] = self._retired.get(agent.agent, 0) + agent.dead_lettered()

    def _nats(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        buses = [bus for bus, _ in self.connections.values()]
        return [metrics.Observation(min(int(bus.is_connected) for bus in buses))] if buses else []

    def _redis(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        stores = [redis for _, redis in self.connections.values() if redis is not None and redis.configured]
        return [metrics.Observation(min(int(redis.available) for redis in stores))] if stores else []

    def _by_agent(
        self, read: Callable[[AgentMetrics], int | None]
    ) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
        def observe(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            found: dict[str, int] = {}
            for agent in list(self.agents):
                value = read(agent)
                if value is not None:  # replicas in one process read the same consumer
                    found[agent.agent] = max(value, found.get(agent.agent, value))
            return [metrics.Observation(value, {"agent": name}) for name, value in found.items()]

        return observe

    def _dead_lettered(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        totals = dict(self._retired)
        for agent in list(self.agents):
            totals[agent.agent] = totals.get(agent.agent, 0) + agent.dead_lettered()
        return [metrics.Observation(total, {"agent": name}) for name, total in totals.items()]


_BY_PROVIDER: weakref.WeakKeyDictionary[metrics.MeterProvider, _Gauges] = weakref.WeakKeyDictionary()


def _gauges(provider: metrics.MeterProvider) -> _Gauges:
    gauges = _BY_PROVIDER.get(provider)
    if gauges is None:
        gauges = _BY_PROVIDER[provider] = _Gauges(provider.get_meter("hivewire.agents"))
    return gauges
