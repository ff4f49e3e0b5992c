"""A durable JetStream pull consumer that keeps messages coming while its handler has room.

nats-py's ``fetch`` is a round trip at a time: ask for what is free, wait for
the batch (or the server's "no more"), run it, ask again. A worker whose
slots free one by one sits idle for a round trip each time, and each fetch is
two or three pull requests. Here pull requests stay outstanding for the
messages the handler can still take: as handled messages free enough room,
one more request asks for exactly that much. This is the "consume" pattern of
the newer NATS clients (nats.go's ``Consume``, nats.js's ``consume``).

Each request expires after ``expires`` seconds (the server then says how many
it did not fill, and they are asked for again), so a request lost with a
server restart or a reconnect is replaced within about that long, and
:meth:`PullConsumer.stop` waits at most that long for the last ones to end
before it lets go of the inbox.

:class:`PullRunner` runs a coroutine in a task of its own for each message,
freeing its room when the task ends, and drains the tasks on
:meth:`PullRunner.stop`; :func:`add_shared_consumer` creates the durable
consumer that several replicas share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from bus.connection import Connection

__all__ = ["PullConsumer", "PullRunner", "add_shared_consumer"]

log = logging.getLogger(__name__)

_STATUS = "Status"
_PENDING_MESSAGES = "Nats-Pending-Messages"
_HEARTBEAT = "100"


class PullConsumer:
    """Hands the messages of a durable pull consumer to ``on_message``, at most ``limit`` in hand.

    Call :meth:`done` once for every message handed out, when it has been dealt
    with (acked, nak'd or left to redeliver): that frees its room.

    Args:
        js: the JetStream context (its connection and API prefix are used).
        stream: the stream the consumer belongs to.
        consumer: the durable consumer's name (it must exist).
        limit: messages handed out and not yet done, at most.
        on_message: called in the event loop with each message; it must not block.
        expires: seconds each pull request lives on the server.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        consumer: str,
        *,
        limit: int,
        on_message: Callable[[Msg], None],
        expires: float = 1.0,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        # nats-py keeps both private; the context is the only handle callers have.
        self._nc: NATS = js._nc
        self._next = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._limit = limit
        # Ask again once this much room is free: fewer, larger requests.
        self._threshold = max(1, limit // 2)
        self._on_message = on_message
        self._expires = expires
        self._in_hand = 0
        # Messages asked for by requests the server may still be filling.
        self._requested = 0
        self._heard = time.monotonic()
        self._stopping = False
        self._settled = asyncio.Event()
        self._inbox = ""
        self._sub: Subscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def in_hand(self) -> int:
        """Messages handed out and not yet done."""
        return self._in_hand

    async def start(self) -> None:
        """Subscribe to a fresh inbox and ask for the first ``limit`` messages."""
        self._loop = asyncio.get_running_loop()
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        if isinstance(self._nc, Connection):
            self._nc.deliver_directly(self._sub._id, deliver=self._deliver)
        self._heard = time.monotonic()
        self._top_up()
        self._watchdog = self._loop.call_later(self._expires, self._watch)

    def done(self) -> None:
        """One message handed out has been dealt with: its room is free again."""
        self._in_hand -= 1
        self._top_up()

    async def stop(self) -> None:
        """Ask for nothing more; once the outstanding requests have ended (or expired), unsubscribe.

        Messages that arrive meanwhile are still handed to ``on_message``:
        the server counts them as delivered to this consumer.
        """
        self._stopping = True
        if self._requested > 0:
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout=self._expires + 1.0)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._sub is not None:
            if isinstance(self._nc, Connection):
                self._nc.stop_delivering(self._sub._id)
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _receive(self, msg: Msg) -> None:
        self._deliver(msg)

    def _deliver(self, msg: Msg) -> None:
        self._heard = time.monotonic()
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is None:
            self._requested = max(0, self._requested - 1)
            self._in_hand += 1
            self._on_message(msg)
            self._settle()
            return
        if status == _HEARTBEAT:
            return
        # The end of a request (expired, or the server gave up on it): whatever
        # it did not fill is no longer on its way.
        assert headers is not None
        pending = headers.get(_PENDING_MESSAGES)
        if pending is not None and pending.isdigit():
            self._requested = max(0, self._requested - int(pending))
            self._settle()
            self._top_up()
            return
        # Refused without saying what was left (the consumer was deleted, say): ask
        # again when the watchdog next looks, not at once, so a refusal cannot spin.
        log.warning("pull request on %s ended: %s %s", self._next, status, headers.get("Description", ""))
        self._requested = 0
        self._settle()

    def _settle(self) -> None:
        if self._stopping and self._requested == 0:
            self._settled.set()

    def _top_up(self) -> None:
        if self._stopping or self._sub is None:
            return
        want = self._limit - self._in_hand - self._requested
        if want < self._threshold and not (want > 0 and self._requested == 0):
            return
        self._requested += want
        request = json.dumps({"batch": want, "expires": int(self._expires * 1e9)}).encode()
        assert self._loop is not None
        sending = self._loop.create_task(self._send(request))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    async def _send(self, request: bytes) -> None:
        try:
            await self._nc.publish(self._next, request, reply=self._inbox)
        except nats.errors.Error as exc:
            # Not sent: nothing is on its way for it. The watchdog asks again.
            log.warning("pull request on %s not sent: %r", self._next, exc)
            self._requested = 0

    def _watch(self) -> None:
        """Replace requests the server no longer has (a restart, a reconnect): it went quiet too long."""
        assert self._loop is not None
        self._watchdog = self._loop.call_later(self._expires, self._watch)
        if time.monotonic() - self._heard > 2 * self._expires + 1.0:
            self._heard = time.monotonic()
            self._requested = 0
            self._top_up()
        elif self._requested == 0:
            self._top_up()


class PullRunner:
    """Runs ``handle`` as a task per message of a durable pull consumer, at most ``limit`` at once.

    A message's room is free again when its task ends, however it ends:
    ``handle`` acks or naks it, or leaves it to be redelivered.

    Args:
        js: the JetStream context.
        stream: the stream the consumer belongs to.
        consumer: the durable consumer's name (it must exist).
        limit: messages being handled at once, at most.
        handle: the coroutine function run for each message.
        expires: seconds each pull request lives on the server.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        consumer: str,
        *,
        limit: int,
        handle: Callable[[Msg], Coroutine[Any, Any, None]],
        expires: float = 1.0,
    ) -> None:
        self._handle = handle
        self._active: set[asyncio.Task[None]] = set()
        self._consumer = PullConsumer(
            js, stream, consumer, limit=limit, on_message=self._accept, expires=expires
        )

    async def start(self) -> None:
        """Start pulling messages and handling them."""
        await self._consumer.start()

    async def stop(self, grace: float) -> None:
        """Take no more messages; give those being handled ``grace`` seconds, then cancel the rest.

        Returns once every task has ended; a message a canceled task had not
        acknowledged is redelivered after its ack wait.
        """
        await self._consumer.stop()
        if self._active:
            _, pending = await asyncio.wait(set(self._active), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def _accept(self, msg: Msg) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(msg))
        self._active.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._consumer.done()


async def add_shared_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> None:
    """Create the durable consumer ``config`` describes, unless another replica has made it meanwhile."""
    with contextlib.suppress(nats.js.errors.BadRequestError):
        await js.add_consumer(stream, config)
