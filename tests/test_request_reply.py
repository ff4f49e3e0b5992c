"""Request/reply: typed replies across processes, queue groups, and every way a request can fail."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time

import anyio
import msgspec
import pytest

from bus import (
    Bus,
    EmbeddedNats,
    Envelope,
    ErrorCode,
    MalformedPayload,
    NoResponders,
    PayloadTooLarge,
    RemoteError,
    Request,
    RequestTimeout,
    subjects,
)
from bus.deadlines import Deadlines
from tests.peers import Ping, Pong
from tests.processes import peer


async def test_request_reply_across_two_processes(nats_server: EmbeddedNats, bus: Bus) -> None:
    async with peer(nats_server.url, "test.echo.cross") as responder:
        reply = await bus.request("test.echo.cross", Ping(text="hello"), Pong)
    assert reply == Pong(text="hello", pid=responder.pid, remaining=reply.remaining)


async def test_replicas_in_a_queue_group_share_requests_and_each_is_handled_once(
    nats_server: EmbeddedNats, bus: Bus
) -> None:
    subject = "test.echo.shared"
    async with (
        peer(nats_server.url, subject, "--queue", "echoers") as first,
        peer(nats_server.url, subject, "--queue", "echoers") as second,
    ):
        replies = await asyncio.gather(*(bus.request(subject, Ping(text=str(i)), Pong) for i in range(200)))
    assert sorted(int(r.text) for r in replies) == list(range(200))
    handled_by = collections.Counter(r.pid for r in replies)
    assert set(handled_by) == {first.pid, second.pid}
    assert sum(handled_by.values()) == 200


async def test_the_deadline_travels_with_the_request(bus: Bus, other_bus: Bus) -> None:
    async def report(request: Request[Ping]) -> Pong:
        return Pong(text="", pid=0, remaining=request.remaining())

    await other_bus.serve("test.deadline", report, Ping)
    reply = await bus.request("test.deadline", Ping(text="x"), Pong, timeout=2.0)
    assert reply.remaining is not None
    assert 1.0 < reply.remaining <= 2.0


async def test_a_shorter_envelope_deadline_wins_over_the_timeout(bus: Bus, other_bus: Bus) -> None:
    async def report(request: Request[Ping]) -> Pong:
        return Pong(text="", pid=0, remaining=request.remaining())

    await other_bus.serve("test.deadline.envelope", report, Ping)
    envelope = Envelope.with_timeout(0.5, tenant="acme")
    reply = await bus.request("test.deadline.envelope", Ping(text="x"), Pong, envelope=envelope)
    assert reply.remaining is not None
    assert reply.remaining <= 0.5


async def test_no_responders_is_reported_at_once(bus: Bus) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders) as caught:
        await bus.request("test.nobody.home", Ping(text="x"), Pong, timeout=5)
    assert caught.value.subject == "test.nobody.home"
    assert time.monotonic() - started < 2


async def test_a_slow_responder_times_out(bus: Bus, other_bus: Bus) -> None:
    async def slow(request: Request[Ping]) -> Pong:
        await asyncio.sleep(5)
        return Pong(text="late", pid=0)

    service = await other_bus.serve("test.slow", slow, Ping)
    with pytest.raises(RequestTimeout) as caught:
        await bus.request("test.slow", Ping(text="x"), Pong, timeout=0.3)
    assert caught.value.timeout == pytest.approx(0.3)
    # The responder's handler is cancelled at the same deadline rather than running on.
    await asyncio.sleep(0.2)
    assert service.stats.in_flight == 0
    assert service.stats.failed == 1


async def test_a_responder_that_gives_up_at_the_deadline_is_a_timeout_for_the_caller(
    bus: Bus, other_bus: Bus
) -> None:
    # Whether the caller's timer or the responder's deadline_exceeded reply
    # comes first is a race; the caller sees the same error either way.
    async def gives_up(request: Request[Ping]) -> Pong:
        raise RemoteError(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed")

    await other_bus.serve("test.gives-up", gives_up, Ping)
    with pytest.raises(RequestTimeout) as caught:
        await bus.request("test.gives-up", Ping(text="x"), Pong, timeout=2.0)
    assert caught.value.timeout == pytest.approx(2.0)


async def test_stopping_a_service_cancels_its_handlers_instead_of_failing_them(
    bus: Bus, other_bus: Bus
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(request: Request[Ping]) -> Pong:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Pong(text="never", pid=0)

    service = await other_bus.serve("test.stop.cancels", stuck, Ping)
    waiting = asyncio.ensure_future(bus.request("test.stop.cancels", Ping(text="x"), Pong, timeout=0.5))
    await started.wait()
    await service.stop(grace=0.05)
    assert cancelled.is_set()
    # A stop is not the deadline: no error is counted and no error reply is sent.
    assert service.stats.in_flight == 0
    assert service.stats.failed == 0
    with pytest.raises(RequestTimeout):
        await waiting


async def test_a_stop_after_the_deadline_still_cancels_a_handler_that_is_cleaning_up(
    bus: Bus, other_bus: Bus
) -> None:
    deadline_passed = asyncio.Event()

    async def stubborn(request: Request[Ping]) -> Pong:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            deadline_passed.set()
            await asyncio.sleep(30)  # cleanup that outlives the deadline
            raise
        return Pong(text="never", pid=0)

    service = await other_bus.serve("test.stop.after.deadline", stubborn, Ping)
    with pytest.raises(RequestTimeout):
        await bus.request("test.stop.after.deadline", Ping(text="x"), Pong, timeout=0.2)
    await asyncio.wait_for(deadline_passed.wait(), 5)
    # stop()'s cancellation must reach the handler, not be taken for the deadline's.
    await asyncio.wait_for(service.stop(grace=0.05), 5)
    assert service.stats.in_flight == 0
    assert service.stats.failed == 0


async def test_max_concurrency_bounds_the_handlers_running_at_once(bus: Bus, other_bus: Bus) -> None:
    running = peak = 0

    async def slow(request: Request[Ping]) -> Pong:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return Pong(text=request.payload.text, pid=0)

    await other_bus.serve("test.bounded", slow, Ping, max_concurrency=2)
    replies = await asyncio.gather(*(bus.request("test.bounded", Ping(text=str(i)), Pong) for i in range(10)))
    assert sorted(int(r.text) for r in replies) == list(range(10))
    assert peak == 2


async def test_a_late_reply_is_dropped_and_later_requests_get_their_own(bus: Bus, other_bus: Bus) -> None:
    release = asyncio.Event()

    async def gated(request: Request[Ping]) -> Pong:
        if request.payload.text == "late":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await release.wait()  # ignores its deadline and answers anyway
        return Pong(text=request.payload.text, pid=0)

    service = await other_bus.serve("test.late", gated, Ping)
    with pytest.raises(RequestTimeout):
        await bus.request("test.late", Ping(text="late"), Pong, timeout=0.1)
    release.set()
    replies = await asyncio.gather(*(bus.request("test.late", Ping(text=str(i)), Pong) for i in range(20)))
    assert [r.text for r in replies] == [str(i) for i in range(20)]
    assert service.stats.handled == 21


async def test_a_raising_handler_sends_an_error_reply_not_a_timeout(bus: Bus, other_bus: Bus) -> None:
    async def broken(request: Request[Ping]) -> Pong:
        raise ZeroDivisionError("division by zero")

    service = await other_bus.serve("test.broken", broken, Ping)
    with pytest.raises(RemoteError) as caught:
        await bus.request("test.broken", Ping(text="x"), Pong, timeout=5)
    assert caught.value.code == ErrorCode.INTERNAL
    assert "ZeroDivisionError: division by zero" in caught.value.message
    # The worker survives and keeps serving.
    with pytest.raises(RemoteError):
        await bus.request("test.broken", Ping(text="again"), Pong)
    assert service.stats.failed == 2


async def test_a_handler_chooses_its_error_code(bus: Bus, other_bus: Bus) -> None:
    async def picky(request: Request[Ping]) -> Pong:
        raise RemoteError("not_found", f"no such thing: {request.payload.text}")

    await other_bus.serve("test.picky", picky, Ping)
    with pytest.raises(RemoteError) as caught:
        await bus.request("test.picky", Ping(text="widget"), Pong)
    assert (caught.value.code, caught.value.message) == ("not_found", "no such thing: widget")


class Wrong(msgspec.Struct, frozen=True):
    number: int


async def test_a_malformed_request_gets_a_bad_request_reply(bus: Bus, other_bus: Bus) -> None:
    async def echo(request: Request[Ping]) -> Pong:
        return Pong(text=request.payload.text, pid=0)

    service = await other_bus.serve("test.strict", echo, Ping)
    with pytest.raises(RemoteError) as caught:
        await bus.request("test.strict", Wrong(number=1), Pong)
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert "malformed Ping" in caught.value.message
    assert "text" in caught.value.message
    assert (await bus.request("test.strict", Ping(text="fine"), Pong)).text == "fine"
    assert service.stats.malformed == 1


async def test_a_name_from_the_request_that_cannot_be_one_is_a_bad_request(bus: Bus, other_bus: Bus) -> None:
    async def keyed(request: Request[Ping]) -> Pong:
        return Pong(text=subjects.token("key", request.payload.text), pid=0)

    await other_bus.serve("test.keyed", keyed, Ping)
    with pytest.raises(RemoteError) as caught:
        await bus.request("test.keyed", Ping(text="not a key"), Pong)
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert "invalid key" in caught.value.message


async def test_malformed_bytes_without_a_reply_subject_are_counted_and_dropped(
    bus: Bus, other_bus: Bus
) -> None:
    seen: list[str] = []

    async def record(request: Request[Ping]) -> None:
        seen.append(request.payload.text)

    service = await other_bus.serve("test.events", record, Ping)
    await bus.publish("test.events", b"\xff not json at all")
    await bus.publish("test.events", Wrong(number=7))
    await bus.publish("test.events", Ping(text="good"))
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0.01)
    assert seen == ["good"]
    assert service.stats.malformed == 2


async def test_a_malformed_reply_is_a_typed_error(bus: Bus, other_bus: Bus) -> None:
    async def wrong_shape(request: Request[Ping]) -> Wrong:
        return Wrong(number=3)

    await other_bus.serve("test.wrong.reply", wrong_shape, Ping)
    with pytest.raises(MalformedPayload) as caught:
        await bus.request("test.wrong.reply", Ping(text="x"), Pong)
    assert caught.value.expected == "Pong"


async def test_an_oversized_payload_is_refused_before_sending(bus: Bus) -> None:
    big = Ping(text="x" * (bus.max_payload + 1))
    with pytest.raises(PayloadTooLarge) as caught:
        await bus.publish("test.big", big)
    assert caught.value.max_payload == bus.max_payload
    assert caught.value.size > bus.max_payload


async def test_an_expired_request_is_not_handled(bus: Bus, other_bus: Bus) -> None:
    calls: list[str] = []

    async def record(request: Request[Ping]) -> None:
        calls.append(request.payload.text)

    service = await other_bus.serve("test.expired", record, Ping)
    await bus.publish("test.expired", Ping(text="stale"), envelope=Envelope.with_timeout(0))
    await bus.publish("test.expired", Ping(text="fresh"), envelope=Envelope.with_timeout(5))
    async with asyncio.timeout(5):
        while not calls:
            await asyncio.sleep(0.01)
    assert calls == ["fresh"]
    assert service.stats.expired == 1


async def test_stop_handles_every_request_already_received_even_those_queued(
    bus: Bus, other_bus: Bus
) -> None:
    async def slow(request: Request[Ping]) -> Pong:
        await asyncio.sleep(0.2)
        return Pong(text=request.payload.text, pid=0)

    service = await bus.serve("test.stop.queued", slow, Ping, max_concurrency=1)
    calls = [
        asyncio.create_task(other_bus.request("test.stop.queued", Ping(text=str(i)), Pong, timeout=5))
        for i in range(4)
    ]
    await asyncio.sleep(0.1)  # all four delivered: one running, three queued behind the limit
    await service.stop(grace=5)
    replies = await asyncio.gather(*calls)
    assert [r.text for r in replies] == ["0", "1", "2", "3"]
    assert service.stats.handled == 4


async def test_a_busy_service_handles_requests_in_arrival_order_and_within_its_limit(
    bus: Bus, other_bus: Bus
) -> None:
    # Messages skip the subscription's queue only while a slot is free and none
    # waits; under a backlog they queue, and none overtakes another.
    handled: list[int] = []
    running = most = 0

    async def busy(request: Request[Ping]) -> None:
        nonlocal running, most
        handled.append(int(request.payload.text))
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1

    service = await other_bus.serve("test.order", busy, Ping, max_concurrency=2)
    for burst in range(50):
        for i in range(40):
            await bus.publish("test.order", Ping(text=str(burst * 40 + i)))
        await asyncio.sleep(0.001)
    async with asyncio.timeout(10):
        while len(handled) < 2000 or service.stats.in_flight:
            await asyncio.sleep(0.01)
    assert handled == list(range(2000))
    assert most == 2
    assert service.stats.handled == 2000


async def test_deadlines_share_one_timer_and_expire_only_what_is_due() -> None:
    loop = asyncio.get_running_loop()
    expired: list[tuple[str, float]] = []
    started = loop.time()
    deadlines: Deadlines[str] = Deadlines(loop, lambda key: expired.append((key, loop.time() - started)))
    deadlines.add("late", 0.2)
    deadlines.add("early", 0.05)  # sooner than the timer armed for "late": it is re-armed
    deadlines.add("answered", 0.1)
    deadlines.discard("answered")
    while len(expired) < 2 and loop.time() - started < 5:
        await asyncio.sleep(0.01)
    assert [key for key, _ in expired] == ["early", "late"]
    # Not before its time; "early" well before the timer first armed for "late" (a loaded machine
    # may run a callback late, so only the lower bounds and the order are exact).
    early, late = expired[0][1], expired[1][1]
    assert 0.049 <= early < 0.199 <= late  # (asyncio may run a timer up to its clock resolution early)


async def test_each_request_has_its_own_context_whether_or_not_its_handler_waits(
    bus: Bus, other_bus: Bus
) -> None:
    # Context variables set by a handler stay its own, whether it finishes at
    # once (as an eager task may, on Python 3.12) or waits while others run.
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")
    waiter_release = asyncio.Event()

    async def handler(request: Request[Ping]) -> Pong:
        before = seen.get()
        seen.set(request.payload.text)
        if request.payload.text == "waits":
            await waiter_release.wait()
        return Pong(text=f"{before}|{seen.get()}", pid=0)

    await other_bus.serve("test.context", handler, Ping)
    waiting = asyncio.ensure_future(bus.request("test.context", Ping(text="waits"), Pong))
    quick = [await bus.request("test.context", Ping(text=f"quick{i}"), Pong) for i in range(3)]
    waiter_release.set()
    assert [r.text for r in quick] == ["|quick0", "|quick1", "|quick2"]
    assert (await waiting).text == "|waits"


async def test_a_handler_may_use_libraries_that_bind_to_its_task(bus: Bus, other_bus: Bus) -> None:
    # anyio's cancel scopes (used by httpx and openai) must be left in the task
    # they were entered in: each request runs in one task from start to end.
    async def handler(request: Request[Ping]) -> Pong:
        with anyio.fail_after(5):  # entered before the handler's first wait, left after it
            await asyncio.sleep(0.01)
        return Pong(text=request.payload.text, pid=0)

    await other_bus.serve("test.anyio", handler, Ping)
    replies = await asyncio.gather(*(bus.request("test.anyio", Ping(text=str(i)), Pong) for i in range(20)))
    assert [r.text for r in replies] == [str(i) for i in range(20)]
