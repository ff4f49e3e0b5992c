"""A conversation's events, read back from the ``HW_EVENTS`` stream and written as Server-Sent Events.

Every event a client can see (the user's message, tokens, task status) is on
the bus first; the gateway only relays it. The stream sequence of an event is
its SSE ``id``, so a client that drops reconnects with ``Last-Event-ID`` to any
gateway replica and gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.js import api
from starlette.responses import StreamingResponse

from agents.infrastructure import release
from bus import subjects
from bus.a2a import StreamResponse
from bus.client import Bus
from bus.errors import MalformedPayload

__all__ = [
    "ConversationFeed",
    "Feed",
    "FeedEvent",
    "event_name",
    "sse_comment",
    "sse_event",
    "sse_response",
]


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of a conversation and its position in the stream."""

    seq: int
    event: StreamResponse


def event_name(event: StreamResponse) -> str:
    """The SSE event name of ``event``: message, task, status or artifact."""
    if not isinstance(event.status_update, msgspec.UnsetType):
        return "status"
    if not isinstance(event.artifact_update, msgspec.UnsetType):
        return "artifact"
    if not isinstance(event.task, msgspec.UnsetType):
        return "task"
    return "message"


def sse_event(data: bytes, *, name: str | None = None, event_id: str | int | None = None) -> bytes:
    """One SSE event (``data`` must be a single line, as compact JSON is)."""
    head = b""
    if event_id is not None:
        head += b"id: %s\n" % str(event_id).encode()
    if name is not None:
        head += b"event: %s\n" % name.encode()
    return head + b"data: " + data + b"\n\n"


def sse_comment(text: str) -> bytes:
    """An SSE comment line (keeps idle connections open through proxies)."""
    return b": " + text.encode() + b"\n\n"


def sse_response(stream: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    """``stream`` (SSE frames) as a ``text/event-stream`` response that no proxy buffers or caches."""
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class ConversationFeed:
    """Follows a conversation's events from a point in its stream."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    @contextlib.asynccontextmanager
    async def open(self, tenant: str, context_id: str, *, after: int | None = None) -> AsyncIterator[Feed]:
        """Events of the conversation after stream sequence ``after`` (``None``: only new ones).

        Entering returns once the server is delivering, so events published
        after this point are never missed.
        """
        subject = subjects.conversation_events(tenant, context_id)
        if after is None:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)
        else:
            config = api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            )
        sub = await self._bus.jetstream().subscribe(
            subject,
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            config=config,
            inactive_threshold=30.0,  # the server's clean-up if this process dies
        )
        try:
            yield Feed(sub, self._bus)
        finally:
            await release(sub)


class Feed:
    """An open feed: ``await feed.next(timeout)`` for the next event."""

    def __init__(self, sub: object, bus: Bus) -> None:
        self._sub = sub
        self._bus = bus

    async def next(self, timeout: float) -> FeedEvent | None:
        """The next event, or ``None`` if none arrived within ``timeout`` seconds.

        Events that do not decode (written by something else) are skipped.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                msg = await self._sub.next_msg(timeout=remaining)  # type: ignore[attr-defined]
            except nats.errors.TimeoutError:
                return None
            try:
                event = self._bus.codec.decode(msg.data, StreamResponse)
            except MalformedPayload:
                continue
            return FeedEvent(msg.metadata.sequence.stream, event)
