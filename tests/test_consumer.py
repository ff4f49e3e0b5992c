"""The pull consumer: at most ``limit`` messages in hand, more as each is done, and no pull
request left behind to swallow messages after a stop or lost with a server restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from bus import Bus, EmbeddedNats
from bus.a2a import new_id
from bus.consumer import PullConsumer, PullRunner, add_shared_consumer
from tests.conftest import settings_for


async def work_queue(js: JetStreamContext) -> tuple[str, str, str]:
    """A fresh work-queue stream with a durable pull consumer: (stream, consumer, subject)."""
    name = f"PULL_{new_id()[:8]}"
    subject = f"pull.{name}"
    await js.add_stream(
        api.StreamConfig(name=name, subjects=[subject], retention=api.RetentionPolicy.WORK_QUEUE)
    )
    # A long ack wait: a message a lost pull request swallowed would not come back during the test.
    config = api.ConsumerConfig(durable_name="workers", ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60)
    await js.add_consumer(name, config)
    return name, "workers", subject


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


async def test_at_most_limit_messages_are_in_hand_and_more_come_as_each_is_done(bus: Bus) -> None:
    js = bus.jetstream()
    stream, durable, subject = await work_queue(js)
    received: list[Msg] = []
    consumer = PullConsumer(js, stream, durable, limit=3, on_message=received.append)
    await consumer.start()
    try:
        for n in range(10):
            await js.publish(subject, b"%d" % n)
        await until(lambda: len(received) == 3)
        await asyncio.sleep(0.3)
        assert (len(received), consumer.in_hand) == (3, 3)
        for done in range(10):
            await until(lambda done=done: len(received) > done)  # type: ignore[misc]
            await received[done].ack()
            consumer.done()
            assert consumer.in_hand <= 3
        assert sorted(int(m.data) for m in received) == list(range(10))
    finally:
        await consumer.stop()


async def test_a_stopped_consumer_leaves_no_request_behind_to_swallow_later_messages(bus: Bus) -> None:
    js = bus.jetstream()
    stream, durable, subject = await work_queue(js)
    first = PullConsumer(js, stream, durable, limit=4, on_message=lambda msg: None, expires=0.5)
    await first.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await first.stop()
    assert time.monotonic() - started < 2.0
    for n in range(3):
        await js.publish(subject, b"%d" % n)
    received: list[Msg] = []
    second = PullConsumer(js, stream, durable, limit=4, on_message=received.append)
    await second.start()
    try:
        await until(lambda: len(received) == 3, within=2.0)
    finally:
        await second.stop()


async def test_a_runner_handles_each_message_in_a_task_and_stop_cancels_what_outlasts_the_grace(
    bus: Bus,
) -> None:
    js = bus.jetstream()
    stream, durable, subject = await work_queue(js)
    # Made already: a second replica's attempt is not an error.
    await add_shared_consumer(
        js, stream, api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60)
    )
    started: list[bytes] = []
    finished: list[bytes] = []
    canceled: list[bytes] = []

    async def handle(msg: Msg) -> None:
        started.append(msg.data)
        try:
            await asyncio.sleep(0.1 if msg.data == b"quick" else 60)
        except asyncio.CancelledError:
            canceled.append(msg.data)
            raise
        await msg.ack()
        finished.append(msg.data)

    runner = PullRunner(js, stream, durable, limit=4, handle=handle, expires=0.5)
    await runner.start()
    await js.publish(subject, b"quick")
    await js.publish(subject, b"stuck")
    await until(lambda: len(started) == 2)
    begun = time.monotonic()
    await runner.stop(grace=1.0)
    assert (finished, canceled) == ([b"quick"], [b"stuck"])
    assert time.monotonic() - begun < 5.0


@pytest.mark.slow
async def test_messages_flow_again_after_the_server_restarts(tmp_path: Path) -> None:
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as server:
        bus = await Bus.connect(settings_for(server.url), name="pull-restart")
        try:
            js = bus.jetstream()
            stream, durable, subject = await work_queue(js)
            received: list[Msg] = []

            def take(msg: Msg) -> None:
                received.append(msg)
                consumer.done()

            consumer = PullConsumer(js, stream, durable, limit=2, on_message=take, expires=0.5)
            await consumer.start()
            await js.publish(subject, b"before")
            await until(lambda: len(received) == 1)
            await asyncio.to_thread(server.restart)
            await until(lambda: bus.is_connected, within=10)
            await js.publish(subject, b"after")
            # The requests died with the server; the consumer asks again within a few expiries.
            await until(lambda: len(received) == 2, within=10)
            assert received[1].data == b"after"
            await consumer.stop()
        finally:
            await bus.close()
