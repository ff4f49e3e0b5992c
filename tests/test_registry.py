"""Live discovery: agents appear when they start, count their replicas, and vanish when they die."""

from __future__ import annotations

import asyncio
import json
import time

from agents import LiveAgent, Mesh
from agents.infrastructure import ensure_bucket, entries
from bus import Bus, EmbeddedNats
from tests.processes import AGENT_ENV, agent_process, hivewire


async def _wait_for(mesh: Mesh, agent: str, replicas: int, within: float) -> LiveAgent | None:
    deadline = time.monotonic() + within
    while True:
        live = await mesh.registry.get(agent)
        if (live.replicas if live else 0) == replicas:
            return live
        if time.monotonic() > deadline:
            raise AssertionError(f"{agent} has {live.replicas if live else 0} replicas, not {replicas}")
        await asyncio.sleep(0.1)


async def test_an_agent_appears_scales_and_disappears_after_it_dies(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    async with agent_process(nats_server.url, "tests.zoo:echo") as first:
        live = await _wait_for(mesh, "echo", 1, within=2)
        assert live is not None
        assert live.card.version == "1.2.0"
        assert "add" in {skill.id for skill in live.card.skills}
        assert live.card.skill_schemas()["count"].streaming is True
        async with agent_process(nats_server.url, "tests.zoo:echo") as second:
            live = await _wait_for(mesh, "echo", 2, within=2)
            assert live is not None
            assert {i.pid for i in live.instances} == {first.pid, second.pid}
            assert [a.name for a in await mesh.registry.agents()].count("echo") == 1
            second.kill()  # no goodbye: only the missing heartbeats tell
            beat, misses = AGENT_ENV["HIVEWIRE_HEARTBEAT_INTERVAL"], AGENT_ENV["HIVEWIRE_HEARTBEAT_MISSES"]
            ttl = float(beat) * int(misses)
            started = time.monotonic()
            await _wait_for(mesh, "echo", 1, within=ttl + 3)
            assert time.monotonic() - started < ttl + 3
        assert await first.terminate() == 0
        # A clean stop withdraws at once.
        await _wait_for(mesh, "echo", 0, within=0.5)


async def test_hivewire_agents_lists_the_live_agents(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        await _wait_for(mesh, "jobs", 1, within=2)
        table = await hivewire(nats_server.url, "agents")
        listed = json.loads(await hivewire(nats_server.url, "agents", "--json"))
    assert table.splitlines()[0].split() == ["AGENT", "VERSION", "REPLICAS", "IN", "FLIGHT", "SKILLS"]
    assert any(line.split()[:3] == ["jobs", "0.1.0", "1"] for line in table.splitlines()[1:])
    assert [entry["name"] for entry in listed] == ["jobs"]
    assert listed[0]["replicas"] == 1


async def test_a_bucket_listing_holds_every_live_key_and_nothing_deleted(bus: Bus) -> None:
    # What `hivewire agents`, `hivewire keys list` and state listings stand on.
    kv = await ensure_bucket(bus.jetstream(), "test_listing", ttl=None)
    assert await entries(kv) == []
    for n in range(50):
        await kv.put(f"k.{n}", str(n).encode())
    await kv.delete("k.49")  # the newest message is a delete: the listing still ends
    for _ in range(20):  # the listing used to come back empty now and then
        listed = await asyncio.gather(*(entries(kv) for _ in range(5)))
        for found in listed:
            assert sorted(int(e.key[2:]) for e in found) == list(range(49))
    assert [e.key for e in await entries(kv, "k.7", values=False)] == ["k.7"]
    assert await entries(kv, "nothing.>") == []


async def test_a_reader_remembers_whom_an_agent_served_when_it_last_saw_it(mesh: Mesh) -> None:
    # What lets the gateway answer 503 (not 404) for an agent while NATS recovers, to its tenants only.
    from agents import Agent
    from agents.registry import Instance

    now = time.time()
    for name, tenants in (("everyones", ()), ("acmes", ("acme",))):
        card = Agent(name, description="remembered").card()
        await mesh.registry.announce(
            Instance(agent=name, instance=f"{name}-1", card=card, beat_at=now, tenants=tenants)
        )
    await mesh.registry.instances()
    assert mesh.registry.last_seen("everyones", "globex") is not None
    assert mesh.registry.last_seen("everyones", None) is not None
    assert mesh.registry.last_seen("acmes", "acme") is not None
    assert mesh.registry.last_seen("acmes", "globex") is None
    assert mesh.registry.last_seen("acmes", None) is None  # an anonymous caller
    assert mesh.registry.last_seen("nobody", "acme") is None
