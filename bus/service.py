"""The responder's side: a subscription that hands typed requests to a handler and replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.trace import INVALID_SPAN, Span

from bus.codec import Codec, malformed
from bus.deadlines import Deadlines
from bus.envelope import Envelope, Header
from bus.errors import BusClosed, ErrorCode, MalformedPayload
from bus.frames import ErrorBody, FrameKind, error_reply
from bus.tracing import BusTelemetry

__all__ = ["Request", "Service", "ServiceStats"]

log = logging.getLogger(__name__)

# Codes of a handler's failure that come from what it called being away, logged as warnings
# without a traceback (a deadline that passed is the caller's to report).
_DEPENDENCY_FAILURES = frozenset({ErrorCode.UNAVAILABLE})

T = TypeVar("T")


class Request(msgspec.Struct, Generic[T], frozen=True):
    """One received request: the decoded payload and its transport metadata."""

    # A struct rather than a frozen dataclass: one is built per request, and a
    # frozen dataclass's __init__ costs several times as much.
    subject: str
    payload: T
    envelope: Envelope

    def remaining(self) -> float | None:
        """Seconds until the caller stops waiting, or ``None`` without a deadline."""
        return self.envelope.remaining()


@dataclass(slots=True)
class ServiceStats:
    """What a service has done since it started."""

    handled: int = 0
    failed: int = 0
    malformed: int = 0
    expired: int = 0
    in_flight: int = 0


class _Outcome:
    """How handling one request ended: ``code`` is ``None`` on success."""

    __slots__ = ("code", "error", "message")

    def __init__(
        self, code: str | None = None, message: str = "", error: BaseException | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.error = error


class _DirectDelivery(Protocol):
    """A connection that can hand a subscription's messages over as soon as they are parsed."""

    def deliver_directly(
        self, sid: int, *, accepting: Callable[[], bool], deliver: Callable[[Msg], None]
    ) -> None: ...

    def stop_delivering(self, sid: int) -> None: ...


class Service(Generic[T]):
    """A running handler on one subject. Created by :meth:`bus.Bus.serve`."""

    def __init__(
        self,
        *,
        nc: NATS,
        telemetry: BusTelemetry,
        codec: Codec,
        subject: str,
        handler: Callable[[Request[T]], Any],
        request_type: type[T],
        queue: str | None,
        max_concurrency: int,
        streaming: bool,
        on_stop: Callable[[Service[Any]], None],
        direct: _DirectDelivery | None = None,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.stats = ServiceStats()
        self._nc = nc
        self._telemetry = telemetry
        self._codec = codec
        self._handler = handler
        self._request_type = request_type
        self._decode = codec.decoder(request_type).decode
        self._streaming = streaming
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._max_concurrency = max_concurrency
        self._slot_freed: asyncio.Future[None] | None = None
        # True while a received message waits for a free slot: meanwhile every
        # message goes through the subscription's queue, so none overtakes it.
        self._backlogged = False
        self._direct = direct
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self._on_stop = on_stop

    async def start(self) -> None:
        """Subscribe; from here on requests are handled."""
        self._loop = asyncio.get_running_loop()
        self._deadlines: Deadlines[_guard] = Deadlines(self._loop, _guard.expire)
        try:
            self._sub = await self._nc.subscribe(self.subject, queue=self.queue or "", cb=self._receive)
            # Once start() returns, the server knows the interest: no request races it.
            # nats-py (2.16) writes a flush's PING straight to the socket, ahead of
            # a SUB still waiting in its buffer; by the second PING the SUB is out.
            await self._nc.flush()
            await self._nc.flush()
        except nats.errors.ConnectionClosedError:
            raise BusClosed() from None
        if self._direct is not None:
            self._direct.deliver_directly(self._sub._id, accepting=self._accepting, deliver=self._spawn)

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop taking requests and give those already received up to ``grace`` seconds to finish.

        Requests the server delivered before it learnt of the stop, including
        those still queued behind ``max_concurrency``, are handled, not dropped.
        """
        sub, self._sub = self._sub, None
        if sub is not None and self._direct is not None:
            self._direct.stop_delivering(sub._id)
        self._on_stop(self)
        deadline = time.monotonic() + grace
        if sub is not None:
            try:
                # Drain, not unsubscribe: unsubscribing would discard what is queued.
                await asyncio.wait_for(sub.drain(), timeout=grace)
            except (TimeoutError, nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
                with contextlib.suppress(nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
                    await sub.unsubscribe()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _receive(self, msg: Msg) -> None:
        # nats-py calls this from one task per subscription, one message at a
        # time. Waiting here when all slots are busy leaves further messages in
        # the subscription's bounded pending queue, which is the backpressure.
        tasks = self._tasks
        if len(tasks) >= self._max_concurrency:
            self._backlogged = True
            try:
                while len(tasks) >= self._max_concurrency:
                    self._slot_freed = freed = self._loop.create_future()
                    await freed
            finally:
                self._backlogged = False
        self._spawn(msg)

    def _accepting(self) -> bool:
        """Whether a message may skip the subscription's queue (see :class:`bus.connection.Connection`)."""
        return not self._backlogged and len(self._tasks) < self._max_concurrency

    def _spawn(self, msg: Msg) -> None:
        task = _new_task(self._loop, self._handle(msg))
        if not task.done():  # an eager task may have finished in its first step
            self._tasks.add(task)

    def _finished(self) -> None:
        # Called by _handle as it ends: a done callback would cost a loop turn per request.
        freed, self._slot_freed = self._slot_freed, None
        if freed is not None and not freed.done():
            freed.set_result(None)

    async def _handle(self, msg: Msg) -> None:
        # The hottest path of a responder, so it is written for speed: no span
        # objects unless tracing is on, the decoder looked up once, few calls.
        started = time.perf_counter()
        stats = self.stats
        stats.in_flight += 1
        try:
            try:
                envelope = Envelope.from_headers(msg.headers)
            except MalformedPayload as exc:
                await self._reject(msg, exc)
                return
            deadline = envelope.deadline
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                # The caller has already given up; doing the work would be wasted.
                stats.expired += 1
                self._telemetry.record_drop(msg.subject, "expired")
                return
            if not self._telemetry.tracing:
                await self._serve(msg, envelope, remaining, INVALID_SPAN)
                return
            with self._telemetry.process_span(
                msg.subject,
                msg.headers,
                message_id=envelope.message_id,
                size=len(msg.data),
                queue=self.queue,
            ) as span:
                await self._serve(msg, envelope, remaining, span)
        finally:
            stats.in_flight -= 1
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            if self._slot_freed is not None:
                self._finished()
            if self._telemetry.metering:
                self._telemetry.record_duration(self.subject, time.perf_counter() - started)

    async def _serve(self, msg: Msg, envelope: Envelope, remaining: float | None, span: Span) -> None:
        try:
            payload = self._decode(msg.data)
        except msgspec.DecodeError as exc:
            error = malformed(exc, self._request_type)
            self._telemetry.record_error(span, error, subject=self.subject)
            await self._reject(msg, error)
            return
        request = Request(msg.subject, payload, envelope)
        reply = msg.reply
        if self._streaming:
            outcome = await self._run_stream(request, reply, remaining)
        else:
            with _guard(remaining, self._deadlines) as outcome:
                result = await self._handler(request)
            if reply:
                if outcome.code is None:
                    try:
                        data = self._codec.encode(result)
                    except (TypeError, ValueError) as exc:  # msgspec: not encodable
                        outcome = _Outcome(ErrorCode.INTERNAL, f"reply is not encodable: {exc}", exc)
                    else:
                        await self._nc.publish(reply, data)
                if outcome.code is not None:
                    await self._reply_error(reply, outcome, frame=None)
        if outcome.error is None:
            self.stats.handled += 1
            return
        self.stats.failed += 1
        self._telemetry.record_error(span, outcome.error, subject=self.subject)
        if outcome.code == ErrorCode.INTERNAL:
            log.error("handler for %s failed", msg.subject, exc_info=outcome.error, stack_info=False)
        elif outcome.code in _DEPENDENCY_FAILURES:
            # Not this handler's bug: what it called was away (see error_reply).
            log.warning("handler for %s failed: %s: %s", msg.subject, outcome.code, outcome.message)

    async def _run_stream(self, request: Request[T], reply: str, remaining: float | None) -> _Outcome:
        handler: Callable[[Request[T]], AsyncIterator[object]] = self._handler
        seq = 0
        with _guard(remaining, self._deadlines) as outcome:
            async for chunk in handler(request):
                if reply:
                    data = self._codec.encode(chunk)
                    await self._nc.publish(reply, data, headers=_frame(FrameKind.DATA, seq))
                seq += 1
        if reply:
            if outcome.code is None:
                await self._nc.publish(reply, b"", headers=_frame(FrameKind.END, seq))
            else:
                await self._reply_error(reply, outcome, frame=seq)
        return outcome

    async def _reject(self, msg: Msg, exc: MalformedPayload) -> None:
        self.stats.malformed += 1
        if not msg.reply:
            self._telemetry.record_drop(msg.subject, "malformed")
            log.warning("dropped a malformed message on %s: %s", msg.subject, exc)
            return
        outcome = _Outcome(ErrorCode.BAD_REQUEST, str(exc), exc)
        await self._reply_error(msg.reply, outcome, frame=0 if self._streaming else None)

    async def _reply_error(self, reply: str, outcome: _Outcome, *, frame: int | None) -> None:
        code = outcome.code or ErrorCode.INTERNAL
        headers = {Header.ERROR: code}
        if frame is not None:
            headers.update(_frame(FrameKind.ERROR, frame))
        body = self._codec.encode(ErrorBody(code=code, message=outcome.message))
        try:
            await self._nc.publish(reply, body, headers=headers)
        except nats.errors.Error as exc:
            log.warning("could not send the error reply to %s: %s", reply, exc)


if sys.version_info >= (3, 12):

    def _new_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # Runs at once up to its first wait, as a task of its own: a handler that
        # never waits (a lookup, an echo) finishes without a trip through the loop.
        return asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def _new_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # No eager tasks before Python 3.12. A first step run outside a task
        # breaks libraries that bind to the current task (anyio's cancel
        # scopes, which httpx and openai use), so every request gets a task.
        return loop.create_task(coro)


def _frame(kind: str, seq: int) -> dict[str, str]:
    return {Header.FRAME: kind, Header.SEQ: str(seq)}


class _guard(_Outcome):
    """Run a handler under the request's deadline and turn what it raises into an outcome.

    A worker must survive any handler failure, so every exception becomes an
    error reply; the caller records it on the trace and in metrics.

    The deadline cancels the handler's task, as :func:`asyncio.timeout` does
    at several times the cost per request (see :class:`Deadlines`). The
    cancellation counts as the deadline's only when nobody else (``stop()``,
    whoever awaits the task) asked for one as well; theirs propagates.
    """

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_task")

    def __init__(self, remaining: float | None, deadlines: Deadlines[_guard]) -> None:
        self.code = None
        self.message = ""
        self.error = None
        self._expired = False
        self._deadlines: Deadlines[_guard] | None = None
        if remaining is not None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a request deadline needs a running task")
            self._task = task
            self._cancelling = task.cancelling()
            self._deadlines = deadlines
            deadlines.add(self, remaining)

    def __enter__(self) -> _Outcome:
        return self

    def expire(self) -> None:
        """The deadline passed: cancel the handler."""
        self._expired = True
        self._task.cancel()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._deadlines is not None:
            self._deadlines.discard(self)
            # uncancel() withdraws the deadline's request; any left are someone else's.
            if (
                self._expired
                and self._task.uncancel() <= self._cancelling
                and exc_type is asyncio.CancelledError
            ):
                timeout = TimeoutError()
                timeout.__cause__ = exc
                exc = timeout
        if exc is None or not isinstance(exc, Exception):
            # Success, or a cancellation (or exit) that is not ours to swallow.
            return False
        self.error = exc
        if self._expired:
            self.code, self.message = ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed"
        else:
            self.code, self.message = error_reply(exc)
        return True
