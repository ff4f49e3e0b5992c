"""The requester's side of a streamed reply: an async iterator over typed chunks."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Any, Generic, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from opentelemetry.trace import Span, Status, StatusCode

from bus.codec import Codec
from bus.envelope import Envelope, Header
from bus.errors import BusClosed, Disconnected, RequestTimeout, StreamBroken
from bus.frames import FrameKind, raise_if_error
from bus.tracing import BusTelemetry

__all__ = ["ReplyStream"]

C = TypeVar("C")


class ReplyStream(Generic[C]):
    """Chunks of one streamed reply, in order, ending when the responder says so.

    Entering the context subscribes a private inbox and sends the request;
    leaving it unsubscribes. Holds at most ``buffer`` unread chunks: beyond that
    NATS drops chunks, and the stream raises :class:`StreamBroken` rather than
    yield a reply with holes in it.
    """

    def __init__(
        self,
        *,
        nc: NATS,
        telemetry: BusTelemetry,
        codec: Codec,
        registry: dict[int, ReplyStream[Any]],
        subject: str,
        data: bytes,
        envelope: Envelope,
        chunk_type: type[C],
        deadline: float,
        buffer: int,
    ) -> None:
        self._nc = nc
        self._telemetry = telemetry
        self._codec = codec
        self._registry = registry
        self._subject = subject
        self._data = data
        self._envelope = envelope
        self._chunk_type = chunk_type
        self._deadline = deadline
        self._buffer = buffer
        self._sub: Subscription | None = None
        self._span: Span | None = None
        self._next_seq = 0
        self._done = False
        self._overflowed = False

    async def __aenter__(self) -> ReplyStream[C]:
        inbox = self._nc.new_inbox()
        headers = self._envelope.to_headers()
        self._span = self._telemetry.start_send(
            "request",
            self._subject,
            headers,
            message_id=self._envelope.message_id,
            size=len(self._data),
        )
        try:
            self._sub = await self._nc.subscribe(inbox, pending_msgs_limit=self._buffer)
            self._registry[self._sub._id] = self
            await self._nc.publish(self._subject, self._data, reply=inbox, headers=headers)
        except nats.errors.ConnectionClosedError:
            await self._finish(BusClosed())
            raise BusClosed() from None
        except nats.errors.OutboundBufferLimitError:
            await self._finish(Disconnected(self._subject))
            raise Disconnected(self._subject) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._finish(exc)

    def __aiter__(self) -> ReplyStream[C]:
        return self

    async def __anext__(self) -> C:
        if self._done:
            raise StopAsyncIteration
        if self._sub is None:
            raise RuntimeError("iterate a ReplyStream inside 'async with'")
        try:
            return await self._next(self._sub)
        except BaseException:
            self._done = True
            raise

    def overflowed(self) -> None:
        """Called when NATS dropped a chunk because the buffer was full."""
        self._overflowed = True

    async def _next(self, sub: Subscription) -> C:
        if self._overflowed:
            raise StreamBroken(self._subject, f"more than {self._buffer} unread chunks; chunks were dropped")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(self._subject, 0.0)
        try:
            msg = await sub.next_msg(timeout=remaining)
        except nats.errors.TimeoutError:
            if self._overflowed:
                raise StreamBroken(self._subject, "chunks were dropped") from None
            raise RequestTimeout(self._subject, remaining) from None
        except nats.errors.ConnectionClosedError:
            raise BusClosed() from None
        raise_if_error(msg, self._subject, self._codec, remaining)
        headers = msg.headers or {}
        seq = headers.get(Header.SEQ)
        if seq != str(self._next_seq):
            raise StreamBroken(self._subject, f"expected chunk {self._next_seq}, got {seq}")
        frame = headers.get(Header.FRAME)
        if frame == FrameKind.END:
            self._done = True
            raise StopAsyncIteration
        if frame != FrameKind.DATA:
            raise StreamBroken(self._subject, f"unknown frame kind {frame!r}")
        self._next_seq += 1
        return self._codec.decode(msg.data, self._chunk_type)

    async def _finish(self, exc: BaseException | None) -> None:
        self._done = True
        if self._sub is not None:
            self._registry.pop(self._sub._id, None)
            sub, self._sub = self._sub, None
            with contextlib.suppress(nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
                await sub.unsubscribe()
        span, self._span = self._span, None
        if span is None:
            return
        span.set_attribute("hivewire.stream.chunks", self._next_seq)
        if exc is not None and not isinstance(exc, GeneratorExit):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.set_attribute("error.type", type(exc).__qualname__)
        span.end()
