"""Streamed replies: chunks arrive in order, end cleanly, and never silently lose anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from bus import (
    Artifact,
    Bus,
    ErrorCode,
    Message,
    NoResponders,
    Part,
    RemoteError,
    Request,
    RequestTimeout,
    StreamBroken,
    StreamResponse,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)


class Count(msgspec.Struct, frozen=True):
    up_to: int
    fail_at: int = -1
    pause: float = 0.0


class Tick(msgspec.Struct, frozen=True):
    n: int


async def counter(request: Request[Count]) -> AsyncIterator[Tick]:
    for n in range(request.payload.up_to):
        if n == request.payload.fail_at:
            raise RemoteError("exhausted", f"gave up at {n}")
        if request.payload.pause:
            await asyncio.sleep(request.payload.pause)
        yield Tick(n)


async def test_chunks_arrive_in_order_and_the_stream_ends(bus: Bus, other_bus: Bus) -> None:
    await other_bus.serve_stream("test.stream.count", counter, Count)
    async with bus.stream("test.stream.count", Count(up_to=500), Tick) as ticks:
        received = [tick.n async for tick in ticks]
    assert received == list(range(500))


async def test_an_empty_stream_just_ends(bus: Bus, other_bus: Bus) -> None:
    await other_bus.serve_stream("test.stream.empty", counter, Count)
    async with bus.stream("test.stream.empty", Count(up_to=0), Tick) as ticks:
        assert [tick async for tick in ticks] == []


async def test_a_failure_mid_stream_raises_after_the_chunks_before_it(bus: Bus, other_bus: Bus) -> None:
    await other_bus.serve_stream("test.stream.fail", counter, Count)
    received: list[int] = []
    with pytest.raises(RemoteError) as caught:
        async with bus.stream("test.stream.fail", Count(up_to=10, fail_at=3), Tick) as ticks:
            async for tick in ticks:
                received.append(tick.n)
    assert received == [0, 1, 2]
    assert caught.value.code == "exhausted"


async def test_a_malformed_stream_request_is_refused(bus: Bus, other_bus: Bus) -> None:
    await other_bus.serve_stream("test.stream.strict", counter, Count)
    with pytest.raises(RemoteError) as caught:
        async with bus.stream("test.stream.strict", Tick(n=1), Tick) as ticks:
            [tick async for tick in ticks]
    assert caught.value.code == ErrorCode.BAD_REQUEST


async def test_no_responders_for_a_stream(bus: Bus) -> None:
    with pytest.raises(NoResponders):
        async with bus.stream("test.stream.nobody", Count(up_to=1), Tick) as ticks:
            [tick async for tick in ticks]


async def test_a_stalled_stream_times_out(bus: Bus, other_bus: Bus) -> None:
    await other_bus.serve_stream("test.stream.slow", counter, Count)
    received: list[int] = []
    with pytest.raises(RequestTimeout):
        async with bus.stream("test.stream.slow", Count(up_to=100, pause=0.2), Tick, timeout=0.5) as ticks:
            async for tick in ticks:
                received.append(tick.n)
    assert 1 <= len(received) <= 3


async def test_a_consumer_that_falls_behind_its_buffer_gets_an_error_not_holes(
    bus: Bus, other_bus: Bus
) -> None:
    await other_bus.serve_stream("test.stream.flood", counter, Count)
    with pytest.raises(StreamBroken):
        async with bus.stream("test.stream.flood", Count(up_to=2000), Tick, buffer=16) as ticks:
            async for _ in ticks:
                await asyncio.sleep(0.01)


async def test_a2a_events_stream_until_a_terminal_status(bus: Bus, other_bus: Bus) -> None:
    async def agent(request: Request[Message]) -> AsyncIterator[StreamResponse]:
        task_id = "t-1"
        yield StreamResponse(
            status_update=TaskStatusUpdateEvent(task_id=task_id, status=TaskStatus.now(TaskState.WORKING))
        )
        for word in request.payload.text.split():
            chunk = Artifact(artifact_id="answer", parts=(Part.text_part(word),))
            yield StreamResponse(
                artifact_update=TaskArtifactUpdateEvent(task_id=task_id, artifact=chunk, append=True)
            )
        yield StreamResponse(
            status_update=TaskStatusUpdateEvent(task_id=task_id, status=TaskStatus.now(TaskState.COMPLETED))
        )

    await other_bus.serve_stream("test.stream.a2a", agent, Message)
    async with bus.stream(
        "test.stream.a2a", Message.user_text("streamed token by token"), StreamResponse
    ) as events:
        received = [event async for event in events]
    words = [
        part.text
        for event in received
        if isinstance(event.artifact_update, TaskArtifactUpdateEvent)
        for part in event.artifact_update.artifact.parts
    ]
    assert words == ["streamed", "token", "by", "token"]
    assert [event.terminal for event in received] == [False] * 5 + [True]
