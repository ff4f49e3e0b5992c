"""The gateway's count of each agent's live replicas: it follows the registry, keeps reporting an agent
that has gone with 0 (for ``remember`` seconds, so an alert can fire on it), forgets the least recently
live beyond its limit, and reports nothing while the registry cannot be read.

The process-level check (an agent process killed, the gateway's ``/metrics`` going from 1 to 0) is in
``tests/test_observability.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats.errors
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents import AgentSettings, Mesh
from agents.registry import Heartbeat, Load
from bus import Bus, new_id
from gateway.replicas import AgentReplicas
from tests import zoo
from tests.metric_points import agent_points


def _named(prefix: str) -> str:
    return f"{prefix}{new_id()[:6]}"


async def _heartbeat(mesh: Mesh, agent: str) -> Heartbeat:
    """One replica of ``agent`` in the registry, beating until stopped (then withdrawn)."""
    beat = Heartbeat(
        mesh.registry,
        agent=agent,
        instance=new_id(),
        card=zoo.echo.card(),
        interval=0.3,
        load=Load,
    )
    await beat.start()
    return beat


@pytest.fixture
async def reader(mesh: Mesh) -> AsyncIterator[tuple[InMemoryMetricReader, MeterProvider]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield reader, provider
    provider.shutdown()


def _points(reader: InMemoryMetricReader) -> dict[str, float]:
    return agent_points(reader, "hivewire.mesh.agent.replicas")


async def test_an_agent_that_loses_its_last_replica_is_reported_with_zero_until_forgotten(
    mesh: Mesh, reader: tuple[InMemoryMetricReader, MeterProvider]
) -> None:
    _, provider = reader
    kept, gone = _named("kept"), _named("gone")
    replicas = AgentReplicas(mesh.registry, provider, interval=60, remember=1.0)
    assert replicas.counts() is None  # not read yet: unknown, not zero
    beats = [await _heartbeat(mesh, kept), await _heartbeat(mesh, kept), await _heartbeat(mesh, gone)]
    try:
        await replicas.read()
        counts = replicas.counts()
        assert counts is not None
        assert (counts[kept], counts[gone]) == (2, 1)
        await beats.pop().stop()  # gone's one replica withdraws
        await replicas.read()
        counts = replicas.counts()
        assert counts is not None
        assert (counts[kept], counts[gone]) == (2, 0)
        await asyncio.sleep(1.2)  # past `remember` since gone was last live
        await replicas.read()
        counts = replicas.counts()
        assert counts is not None
        assert counts[kept] == 2
        assert gone not in counts
    finally:
        for beat in beats:
            await beat.stop()


async def test_the_agents_remembered_are_bounded_the_least_recently_live_forgotten_first(
    mesh: Mesh, reader: tuple[InMemoryMetricReader, MeterProvider]
) -> None:
    _, provider = reader
    first, second, third = _named("first"), _named("second"), _named("third")
    # Room for two of these, besides the agents other tests may have left live in the shared registry.
    others = len(await mesh.registry.agents())
    replicas = AgentReplicas(mesh.registry, provider, interval=60, limit=others + 2)
    for name in (first, second, third):
        beat = await _heartbeat(mesh, name)
        await replicas.read()
        await beat.stop()
    await replicas.read()
    counts = replicas.counts()
    assert counts is not None
    assert {first, second, third} & set(counts) == {second, third}
    assert (counts[second], counts[third]) == (0, 0)


async def test_the_gauge_reports_every_agent_seen_and_nothing_once_stopped(
    mesh: Mesh, reader: tuple[InMemoryMetricReader, MeterProvider]
) -> None:
    memory, provider = reader
    name = _named("gauged")
    beat = await _heartbeat(mesh, name)
    replicas = AgentReplicas(mesh.registry, provider, interval=0.05)
    try:
        replicas.start()  # reads at once, then every interval
        for _ in range(100):
            if _points(memory).get(name) == 1:
                break
            await asyncio.sleep(0.05)
        assert _points(memory)[name] == 1
        await beat.stop()
        for _ in range(100):
            if _points(memory).get(name) == 0:
                break
            await asyncio.sleep(0.05)
        assert _points(memory)[name] == 0  # still reported: the series does not vanish
    finally:
        await beat.stop()
        await replicas.stop()
    assert _points(memory) == {}


async def test_while_the_registry_cannot_be_read_nothing_is_reported(
    agent_settings: AgentSettings, reader: tuple[InMemoryMetricReader, MeterProvider]
) -> None:
    memory, provider = reader
    bus = await Bus.connect(agent_settings, name="test-replicas")
    mesh = await Mesh.open(bus, agent_settings)
    name = _named("unread")
    beat = await _heartbeat(mesh, name)
    replicas = AgentReplicas(mesh.registry, provider, interval=60)
    replicas.start()
    try:
        for _ in range(100):
            if name in _points(memory):
                break
            await asyncio.sleep(0.05)
        assert _points(memory)[name] == 1
        await beat.stop()
        await bus.close()  # the gateway's connection is gone
        with pytest.raises(nats.errors.Error):
            await replicas.read()
        # Unknown is not zero: no agent is reported as down because the registry is out of reach.
        assert replicas.counts() is None
        assert _points(memory) == {}
    finally:
        await replicas.stop()
        await beat.stop()
        await bus.close()
