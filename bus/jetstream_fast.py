"""JetStream publishes and key-value writes without nats-py's per-request overhead.

nats-py's ``js.publish`` goes through ``nc.request``, which pays on every call
for a random token, a NUID, ``asyncio.wait_for`` and a JSON parse into a
dataclass; a durable task makes several such writes. Here one wildcard reply
inbox per publisher (its acknowledgements handed over as soon as they are
parsed, on the bus's connection), a counter token, one shared timer for all
deadlines and a msgspec decoder of the PubAck do the same work for a fraction
of the cost. Errors are nats-py's
own (``nats.js.errors``), so callers catch the same exceptions either way.
"""

from __future__ import annotations

import asyncio
import itertools

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from bus.connection import Connection
from bus.deadlines import Deadlines

__all__ = ["FastJetStream", "FastKeyValue", "PubAck"]

# JetStream's "wrong last sequence" errors: a compare-and-set that lost.
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
_EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
_STATUS = "Status"
_NO_RESPONDERS = "503"


class PubAck(msgspec.Struct, frozen=True, kw_only=True):
    """JetStream's acknowledgement of a stored message."""

    stream: str
    seq: int
    duplicate: bool = False


class _ApiError(msgspec.Struct, frozen=True, kw_only=True):
    code: int = 0
    err_code: int | None = None
    description: str | None = None


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_decode_reply = msgspec.json.Decoder(_Reply).decode


class FastJetStream:
    """Publishes to JetStream streams and waits for their acknowledgements.

    Args:
        js: the JetStream context whose connection and timeout to use.
    """

    def __init__(self, js: JetStreamContext) -> None:
        # nats-py keeps both private; the context is the only handle callers have.
        self._nc: NATS = js._nc
        self._timeout: float = js._timeout
        self._prefix: str | None = None
        self._subscribing = asyncio.Lock()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        # Set with the inbox, in the running loop.
        self._loop: asyncio.AbstractEventLoop
        self._deadlines: Deadlines[str]

    async def publish(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None) -> PubAck:
        """Store ``data`` on ``subject`` and return the stream's acknowledgement.

        Raises:
            nats.errors.TimeoutError: no acknowledgement within the context's timeout.
            nats.js.errors.NoStreamResponseError: no stream takes ``subject``.
            nats.js.errors.APIError: the stream refused the message (its subclass by code).
        """
        prefix = self._prefix
        if prefix is None:
            prefix = await self._subscribe()
        token = f"{next(self._tokens):x}"
        waiter: asyncio.Future[Msg] = self._loop.create_future()
        self._waiting[token] = waiter
        deadlines = self._deadlines
        deadlines.add(token, self._timeout)
        try:
            await self._nc.publish(subject, data, reply=prefix + token, headers=headers)
            msg = await waiter
        finally:
            deadlines.discard(token)
            del self._waiting[token]
        if not msg.data and msg.headers is not None and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            raise nats.js.errors.NoStreamResponseError
        reply = _decode_reply(msg.data)
        if reply.error is not None:
            raise _api_error(reply.error)
        return PubAck(stream=reply.stream, seq=reply.seq, duplicate=reply.duplicate)

    async def _subscribe(self) -> str:
        async with self._subscribing:
            if self._prefix is None:
                self._loop = asyncio.get_running_loop()
                self._deadlines = Deadlines(self._loop, self._expire)
                prefix = self._nc.new_inbox() + "."
                # The SUB goes out ahead of any publish after it: no flush needed.
                sub = await self._nc.subscribe(prefix + "*", cb=self._receive)
                if isinstance(self._nc, Connection):
                    self._nc.deliver_directly(sub._id, accepting=_always, deliver=self._deliver)
                self._prefix = prefix
            return self._prefix

    async def _receive(self, msg: Msg) -> None:
        self._deliver(msg)

    def _deliver(self, msg: Msg) -> None:
        assert self._prefix is not None
        waiter = self._waiting.get(msg.subject[len(self._prefix) :])
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    def _expire(self, token: str) -> None:
        waiter = self._waiting.get(token)
        if waiter is not None and not waiter.done():
            waiter.set_exception(nats.errors.TimeoutError())


def _api_error(error: _ApiError) -> nats.js.errors.APIError:
    # The same classes nats-py's own publish raises for each code.
    kind = _ERRORS.get(error.code, nats.js.errors.APIError)
    return kind(code=error.code, err_code=error.err_code, description=error.description)


_ERRORS: dict[int, type[nats.js.errors.APIError]] = {
    400: nats.js.errors.BadRequestError,
    404: nats.js.errors.NotFoundError,
    500: nats.js.errors.ServerError,
    503: nats.js.errors.ServiceUnavailableError,
}


def _always() -> bool:
    return True


class FastKeyValue:
    """Writes to a key-value bucket through :class:`FastJetStream`; reads stay with nats-py.

    Args:
        kv: the bucket, as nats-py opened it.
    """

    def __init__(self, kv: KeyValue) -> None:
        # The bucket's JetStream context and subject prefix ("$KV.<bucket>.") are private in nats-py.
        self._js = FastJetStream(kv._js)
        self._prefix: str = kv._pre

    async def put(self, key: str, value: bytes) -> int:
        """Write ``value`` whatever the key holds; return the new revision."""
        return (await self._js.publish(self._prefix + key, value)).seq

    async def update(self, key: str, value: bytes, *, last: int) -> int:
        """Write ``value`` if the key is still at revision ``last`` (0: absent); return the new revision.

        Raises:
            nats.js.errors.KeyWrongLastSequenceError: the key is at another revision.
        """
        headers = {_EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)}
        try:
            return (await self._js.publish(self._prefix + key, value, headers=headers)).seq
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise nats.js.errors.KeyWrongLastSequenceError(description=exc.description) from None
            raise
