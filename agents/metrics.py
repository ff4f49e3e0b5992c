"""What an agent replica tells operators beyond its spans: its task backlog, dead letters, connections.

The backlog is the agent's durable-task consumer on ``HW_TASKS`` as JetStream
sees it (every replica reports the same figures: take the ``max`` by agent),
read every few seconds in the background because OpenTelemetry collects
gauges synchronously. Nothing is read while no meter provider collects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

_Gauge = Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]


def observe_connections(meter: metrics.Meter, bus: Bus, redis: RedisStore | None) -> None:
    """Gauges of whether the process reaches NATS (and Redis, when one is configured): 1 or 0."""

    def nats_up(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [metrics.Observation(1 if bus.is_connected else 0)]

    def redis_up(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        if redis is None or not redis.configured:
            return []
        return [metrics.Observation(1 if redis.available else 0)]

    meter.create_observable_gauge(
        "hivewire.nats.connected",
        callbacks=[nats_up],
        unit="1",
        description="1 while the process is connected to NATS, 0 while it is reconnecting.",
    )
    meter.create_observable_gauge(
        "hivewire.redis.available",
        callbacks=[redis_up],
        unit="1",
        description="1 while Redis answered at the last attempt, 0 while the process works without it.",
    )


class AgentMetrics:
    """The backlog and dead letters of one agent, read from JetStream every ``interval`` seconds."""

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
        self._agent = agent
        self._bus = bus
        self._interval = interval
        self._attributes = {"agent": agent}
        self._pending: int | None = None
        self._unacked: int | None = None
        self._dead_letters: int | None = None
        self._task: asyncio.Task[None] | None = None
        meter = meter_provider.get_meter("hivewire.agents")
        observe_connections(meter, bus, redis)
        meter.create_observable_gauge(
            "hivewire.tasks.queue.depth",
            callbacks=[self._gauge(lambda: self._pending)],
            unit="{task}",
            description="Durable tasks of the agent waiting for a replica (the consumer's pending).",
        )
        meter.create_observable_gauge(
            "hivewire.tasks.consumer.lag",
            callbacks=[self._gauge(self._lag)],
            unit="{task}",
            description="Durable tasks of the agent waiting or running (what KEDA scales on).",
        )
        meter.create_observable_gauge(
            "hivewire.tasks.dead_letters",
            callbacks=[self._gauge(lambda: self._dead_letters)],
            unit="{task}",
            description="Tasks of the agent parked in the dead-letter stream (HW_DLQ), every tenant.",
        )
        meter.create_observable_counter(
            "hivewire.tasks.dead_lettered",
            callbacks=[self._gauge(dead_lettered)],
            unit="{task}",
            description="Tasks this replica gave up on and parked in the dead-letter stream.",
        )

    def _lag(self) -> int | None:
        if self._pending is None or self._unacked is None:
            return None
        return self._pending + self._unacked

    def _gauge(self, read: Callable[[], int | None]) -> _Gauge:
        def observe(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            value = read()
            return [] if value is None else [metrics.Observation(value, self._attributes)]

        return observe

    def start(self) -> None:
        """Read the backlog now and every ``interval`` seconds until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"metrics-{self._agent}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def read(self) -> None:
        """Read the consumer's and the dead-letter stream's figures once."""
        js = self._bus.jetstream()
        consumer = await js.consumer_info(subjects.TASKS_STREAM, subjects.task_consumer(self._agent))
        self._pending = consumer.num_pending or 0
        self._unacked = consumer.num_ack_pending or 0
        try:
            dlq = await js.stream_info(
                subjects.DEAD_LETTER_STREAM, subjects_filter=subjects.dead_letters_matching(agent=self._agent)
            )
        except nats.js.errors.NotFoundError:
            self._dead_letters = 0
        else:
            self._dead_letters = sum((dlq.state.subjects or {}).values())

    async def _poll(self) -> None:
        while True:
            try:
                await self.read()
            except (BusError, nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                # Unknown is not zero: the gauges go quiet until a read succeeds again.
                self._pending = self._unacked = self._dead_letters = None
                log.debug("agent %s: backlog not read (%s)", self._agent, exc)
            await asyncio.sleep(self._interval)
