"""Streamed turns as the agent's durable work: queued once, streamed to the conversation, ended there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from agents import Agent, Context
from agents.deadletter import DeadLetters
from agents.mesh import Mesh
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats, new_id, subjects
from bus.a2a import Message, StreamResponse, TaskState
from gateway.events import ConversationFeed
from gateway.turns import ends
from tests.processes import AGENT_ENV

RUN = new_id()[:8]
narrator = Agent(f"narrator-{RUN}", description="Streams the words it is given, for the turn tests.")


@narrator.skill
async def tell(ctx: Context, text: str) -> AsyncIterator[str]:
    """Stream each word of ``text``."""
    for word in text.split():
        yield word + " "


@narrator.skill
async def trip(ctx: Context, text: str) -> AsyncIterator[str]:
    """Stream a word, then fail."""
    yield "half "
    raise ValueError(f"tripped on {text!r}")


@pytest.fixture(scope="module")
async def runtime(nats_server: EmbeddedNats) -> AsyncIterator[AgentRuntime]:
    """One replica of the narrator for the module (settings as ``tests.processes.AGENT_ENV``)."""
    values = {key.removeprefix("HIVEWIRE_").lower(): value for key, value in AGENT_ENV.items()}
    settings = AgentSettings(_env_file=None, nats_url=nats_server.url, **values)  # type: ignore[call-arg, arg-type]
    bus = await Bus.connect(settings, name="test-narrator")
    try:
        async with AgentRuntime(narrator, bus, settings) as running:
            yield running
    finally:
        await bus.close()


async def _turn(
    mesh: Mesh, tenant: str, skill: str, text: str, *, times: int = 1, linger: float = 0.0
) -> tuple[str, list[StreamResponse]]:
    """Queue one turn (``times`` times over) and return its id and the conversation's events until it
    ended (and ``linger`` seconds more)."""
    message = msgspec.structs.replace(Message.user_text(text, context_id=new_id()), task_id=new_id())
    assert message.context_id is not None
    assert message.task_id is not None
    seen: list[StreamResponse] = []
    async with ConversationFeed(mesh.bus).open(tenant, message.context_id) as feed:
        for _ in range(times):
            await mesh.turns.start(tenant, narrator.name, skill, message, timeout=5)
        while not seen or not ends(seen[-1], message.task_id):
            found = await feed.next(5)
            assert found is not None, f"the turn did not end: {seen}"
            seen.append(found.event)
        while (found := await feed.next(linger) if linger else None) is not None:
            seen.append(found.event)
    return message.task_id, seen


def _chunks(events: list[StreamResponse]) -> list[str | None]:
    return [
        part.text
        for event in events
        if not isinstance(event.artifact_update, msgspec.UnsetType)
        for part in event.artifact_update.artifact.parts
    ]


def _ends(events: list[StreamResponse]) -> list[Any]:
    return [
        event.status_update.status
        for event in events
        if not isinstance(event.status_update, msgspec.UnsetType)
        and event.status_update.status.state.terminal
    ]


async def test_a_turn_streams_to_its_conversation_and_ends_there(runtime: AgentRuntime, mesh: Mesh) -> None:
    turn_id, events = await _turn(mesh, "acme", "tell", "once upon a time")
    assert _chunks(events) == ["once ", "upon ", "a ", "time "]
    [end] = _ends(events)
    assert end.state is TaskState.COMPLETED
    assert end.message.text == "once upon a time "
    # The turn is a task of its conversation, marked as a turn.
    task = await mesh.tasks.get("acme", turn_id)
    assert task.status.state is TaskState.COMPLETED
    assert task.metadata is not None
    assert task.metadata["turn"] is True
    assert task.metadata["deliveries"] == 1


async def test_a_turn_queued_twice_runs_once(runtime: AgentRuntime, mesh: Mesh) -> None:
    _, events = await _turn(mesh, "acme", "tell", "only once", times=2, linger=0.5)
    assert _chunks(events) == ["only ", "once "]
    assert len(_ends(events)) == 1


async def test_a_turn_whose_skill_fails_ends_failed_at_once_and_is_not_dead_lettered(
    runtime: AgentRuntime, mesh: Mesh
) -> None:
    tenant = f"trip{RUN}"
    turn_id, events = await _turn(mesh, tenant, "trip", "a stone")
    assert _chunks(events) == ["half "]
    [end] = _ends(events)
    assert end.state is TaskState.FAILED
    assert end.message.metadata["error"] == {
        "code": "internal",
        "message": "ValueError: tripped on 'a stone'",
    }
    task = await mesh.tasks.get(tenant, turn_id)
    assert task.metadata is not None
    assert task.metadata["deliveries"] == 1  # not retried: its chunks went out already
    assert await mesh.dead_letters.list(tenant=tenant) == []


async def test_a_malformed_turn_is_dead_lettered(runtime: AgentRuntime, mesh: Mesh) -> None:
    tenant = f"junk{RUN}"
    await mesh.bus.jetstream().publish(subjects.turn(tenant, narrator.name, "junk-1"), b"not a turn")
    letters = DeadLetters(mesh.bus.jetstream(), mesh.bus.codec)
    async with asyncio.timeout(5):
        while not (parked := await letters.list(tenant=tenant)):
            await asyncio.sleep(0.05)
    [letter] = parked
    assert letter.letter.agent == narrator.name
    assert letter.letter.reason.startswith("malformed task")
    assert letter.letter.payload == "not a turn"
