"""A connection's replies: one wildcard inbox, a waiting future per request.

Used for bus requests and for JetStream acknowledgements (``bus.jetstream_fast``).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bus.connection import Connection
from bus.deadlines import Deadlines

__all__ = ["Replies"]


class Replies:
    """Replies to this connection's requests: one wildcard inbox, a waiting future per request.

    nats-py's ``request()`` does the same, but pays on every call for a random
    token (a system call), a NUID and ``asyncio.wait_for``; a counter and an
    entry in one shared :class:`~bus.deadlines.Deadlines` are a fraction of
    that, on the hottest path of the mesh. On the bus's :class:`Connection`
    replies are handed over as soon as they are parsed.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix: str | None = None
        self._subscribing = asyncio.Lock()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Msg | None]] = {}
        # Set with the inbox, in the running loop.
        self._loop: asyncio.AbstractEventLoop
        self._deadlines: Deadlines[str]

    async def request(
        self, subject: str, data: bytes, headers: dict[str, Any] | None, wait: float
    ) -> Msg | None:
        """Publish a request and return its reply, or ``None`` if none came within ``wait`` seconds."""
        prefix = self._prefix
        if prefix is None:
            prefix = await self._subscribe()
        token = f"{next(self._tokens):x}"
        waiter: asyncio.Future[Msg | None] = self._loop.create_future()
        self._waiting[token] = waiter
        deadlines = self._deadlines
        deadlines.add(token, wait)
        try:
            await self._nc.publish(subject, data, reply=prefix + token, headers=headers)
            return await waiter
        finally:
            deadlines.discard(token)
            del self._waiting[token]

    async def _subscribe(self) -> str:
        async with self._subscribing:
            if self._prefix is None:
                self._loop = asyncio.get_running_loop()
                self._deadlines = Deadlines(self._loop, self._give_up)
                prefix = self._nc.new_inbox() + "."
                # The SUB goes out ahead of any request published after it: no flush needed.
                sub = await self._nc.subscribe(prefix + "*", cb=self._receive)
                if isinstance(self._nc, Connection):
                    self._nc.deliver_directly(sub._id, deliver=self._deliver)
                self._prefix = prefix
            return self._prefix

    async def _receive(self, msg: Msg) -> None:
        self._deliver(msg)

    def _deliver(self, msg: Msg) -> None:
        assert self._prefix is not None
        waiter = self._waiting.get(msg.subject[len(self._prefix) :])
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def _give_up(self, token: str) -> None:
        waiter = self._waiting.get(token)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
