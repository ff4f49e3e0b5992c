"""Conversation history across a Redis outage: turns made meanwhile reach Redis once it is back,
in order, without a read or write to prompt it; past the buffer's bound the oldest are dropped, counted;
and a write whose answer was lost, written again, is there once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents.history import ConversationHistory
from agents.llm.messages import ChatMessage
from agents.redisstore import RedisStore
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to stop and restart"
)


@asynccontextmanager
async def history_on(
    redis: RedisServer, *, url: str | None = None, **options: object
) -> AsyncIterator[ConversationHistory]:
    """A process's history on ``redis`` (reached at ``url`` if given), quick to notice it gone and back."""
    store = RedisStore(url or redis.url, timeout=0.3, retry_interval=0.1)
    history = ConversationHistory(
        store,
        ttl=600,
        max_turns=50,
        token_budget=10_000,
        retry_interval=0.1,
        **options,  # type: ignore[arg-type]
    )
    try:
        yield history
    finally:
        await history.close()
        await store.close()


def texts(turns: list[ChatMessage]) -> list[str | None]:
    return [turn.content for turn in turns]  # type: ignore[misc]


async def test_turns_made_while_redis_is_away_are_in_history_when_it_is_back() -> None:
    with RedisServer() as redis:
        async with history_on(redis) as writer, history_on(redis) as reader:
            await writer.append("acme", "c-1", ChatMessage.user("before"))
            await asyncio.to_thread(redis.stop)
            during = (ChatMessage.user("during 1"), ChatMessage.assistant("answer 1"))
            await writer.append("acme", "c-1", *during)
            await writer.append("acme", "c-2", ChatMessage.user("elsewhere"))
            await writer.append("acme", "c-1", ChatMessage.user("during 2"))
            assert writer.pending == 4
            # This process still sees them (its in-process store answers while Redis is away).
            assert texts(await writer.load("acme", "c-1")) == ["before", "during 1", "answer 1", "during 2"]

            await asyncio.to_thread(redis.start)  # the same port, empty (no persistence)
            # Another process sees them once they are written through: nobody had to read or write here.
            async with asyncio.timeout(5):
                while texts(await reader.load("acme", "c-1")) != ["during 1", "answer 1", "during 2"]:
                    await asyncio.sleep(0.05)
            assert texts(await reader.load("acme", "c-2")) == ["elsewhere"]
            assert writer.pending == 0
            # A turn after the outage goes after them.
            await writer.append("acme", "c-1", ChatMessage.assistant("answer 2"))
            assert texts(await reader.load("acme", "c-1"))[-2:] == ["during 2", "answer 2"]


async def test_past_the_bound_the_oldest_turns_of_the_outage_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader_metrics = InMemoryMetricReader()
    with RedisServer() as redis:
        async with (
            history_on(
                redis, pending_max=3, meter_provider=MeterProvider(metric_readers=[reader_metrics])
            ) as writer,
            history_on(redis) as reader,
        ):
            await asyncio.to_thread(redis.stop)
            for i in range(5):
                await writer.append("acme", "c-b", ChatMessage.user(f"turn {i}"))
            assert writer.pending == 3
            await asyncio.to_thread(redis.start)
            async with asyncio.timeout(5):
                while texts(await reader.load("acme", "c-b")) != ["turn 2", "turn 3", "turn 4"]:
                    await asyncio.sleep(0.05)
    dropped = [
        point.value  # type: ignore[union-attr]
        for rm in reader_metrics.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "hivewire.history.dropped"
        for point in metric.data.data_points
    ]
    assert dropped == [2]
    assert caplog.text.count("dropping the oldest") == 1
    assert "except 2 turns dropped" in caplog.text


async def test_a_write_whose_answer_was_lost_is_written_again_and_is_there_once() -> None:
    """Redis took the turns, but the writer never heard so (its answer lost, as when Redis stops
    right after a command or answers too late): the writer keeps them for later, as for an
    outage, and writing them again adds nothing."""
    with RedisServer() as redis:
        proxy = await TcpProxy(redis.port).start()
        try:
            async with (
                history_on(redis, url=f"redis://127.0.0.1:{proxy.port}/0") as writer,
                history_on(redis) as reader,
            ):
                await writer.append("acme", "c-l", ChatMessage.user("before"))
                proxy.swallow_replies = True
                await writer.append(
                    "acme", "c-l", ChatMessage.user("asked"), ChatMessage.assistant("answered")
                )
                assert writer.pending == 2  # it timed out: for all it knows, Redis did not take them
                assert texts(await reader.load("acme", "c-l")) == ["before", "asked", "answered"]
                proxy.swallow_replies = False
                async with asyncio.timeout(5):
                    while writer.pending:
                        await asyncio.sleep(0.05)
                await writer.append("acme", "c-l", ChatMessage.user("after"))
                assert texts(await reader.load("acme", "c-l")) == ["before", "asked", "answered", "after"]
        finally:
            await proxy.stop()


async def test_a_turn_recorded_twice_is_in_the_history_once() -> None:
    with RedisServer() as redis:
        async with history_on(redis) as writer:
            turn = (ChatMessage.user("hello"), ChatMessage.assistant("hi"))
            await writer.append("acme", "c-t", *turn, write_id="m-1")
            await writer.append("acme", "c-t", *turn, write_id="m-1")  # redelivered, recorded again
            await writer.append("acme", "c-t", *turn, write_id="m-2")  # the same words, another turn
            assert texts(await writer.load("acme", "c-t")) == ["hello", "hi", "hello", "hi"]
            # Forgetting the conversation forgets its writes too.
            await writer.clear("acme", "c-t")
            await writer.append("acme", "c-t", *turn, write_id="m-1")
            assert texts(await writer.load("acme", "c-t")) == ["hello", "hi"]
