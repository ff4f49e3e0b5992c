"""JetStream publishes, direct gets and key-value reads and writes without nats-py's per-request overhead.

nats-py's ``js.publish`` goes through ``nc.request``, which pays on every call
for a random token, a NUID, ``asyncio.wait_for`` and a JSON parse into a
dataclass; a durable task makes several such writes. Here the bus's own reply
inbox (:class:`bus.replies.Replies`: a counter token, one shared deadline
timer, replies handed over as parsed) and a msgspec decoder of the PubAck do
the same work for a fraction of the cost; a read is one direct get whose reply
is the stored message itself. Errors are nats-py's
own (``nats.js.errors``), so callers catch the same exceptions either way.
"""

from __future__ import annotations

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from bus.replies import Replies

__all__ = ["FastJetStream", "FastKeyValue", "PubAck"]

# JetStream's "wrong last sequence" errors: a compare-and-set that lost.
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
_EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
_STATUS = "Status"
_NO_RESPONDERS = "503"
_NOT_FOUND = "404"
_SEQUENCE = "Nats-Sequence"
_KV_OPERATION = "KV-Operation"
_REMOVED = frozenset({"DEL", "PURGE"})


class _LastRequest(msgspec.Struct, frozen=True):
    last_by_subj: str


_encode_last = msgspec.json.Encoder().encode


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
        # nats-py keeps them private; the context is the only handle callers have.
        self._replies = Replies(js._nc)
        self._timeout: float = js._timeout
        self._api: str = js._prefix

    async def last(self, stream: str, subject: str) -> Msg | None:
        """The last message stored on ``subject`` (wildcards allowed) in ``stream``, or ``None``.

        A direct get (the stream allows them): any server holding the stream
        answers, and the reply is the stored message itself, its headers with
        ``Nats-Sequence`` and ``Nats-Subject``.

        Raises:
            nats.errors.TimeoutError: no answer within the context's timeout.
            nats.js.errors.NoStreamResponseError: no server answers direct gets on ``stream``.
            nats.js.errors.APIError: the server refused the request.
        """
        request = _encode_last(_LastRequest(last_by_subj=subject))
        msg = await self._replies.request(f"{self._api}.DIRECT.GET.{stream}", request, None, self._timeout)
        if msg is None:
            raise nats.errors.TimeoutError
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None or msg.data:
            return msg
        if status == _NOT_FOUND:
            return None
        if status == _NO_RESPONDERS:
            raise nats.js.errors.NoStreamResponseError
        description = str(msg.headers.get("Description", "")) if msg.headers else ""
        raise nats.js.errors.APIError(code=int(status), description=description)

    async def publish(self, subject: str, data: bytes, *, headers: dict[str, str] | None = None) -> PubAck:
        """Store ``data`` on ``subject`` and return the stream's acknowledgement.

        Raises:
            nats.errors.TimeoutError: no acknowledgement within the context's timeout.
            nats.js.errors.NoStreamResponseError: no stream takes ``subject``.
            nats.js.errors.APIError: the stream refused the message (its subclass by code).
        """
        msg = await self._replies.request(subject, data, headers, self._timeout)
        if msg is None:
            raise nats.errors.TimeoutError
        if not msg.data and msg.headers is not None and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            raise nats.js.errors.NoStreamResponseError
        try:
            reply = _decode_reply(msg.data)
        except msgspec.DecodeError:
            # Someone else answered first: a core subscriber of the subject that replies to it.
            shown = msg.data[:80].decode("utf-8", "replace")
            raise nats.js.errors.APIError(
                description=f"the reply on {subject!r} is not JetStream's acknowledgement: {shown!r} "
                "(does a subscriber of the subject reply to what it hears?)"
            ) from None
        if reply.error is not None:
            raise _api_error(reply.error)
        return PubAck(stream=reply.stream, seq=reply.seq, duplicate=reply.duplicate)


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


class FastKeyValue:
    """Reads and writes of a key-value bucket through :class:`FastJetStream`.

    Args:
        kv: the bucket, as nats-py opened it.
    """

    def __init__(self, kv: KeyValue) -> None:
        # The bucket's JetStream context and subject prefix ("$KV.<bucket>.") are private in nats-py.
        self._js = FastJetStream(kv._js)
        self._prefix: str = kv._pre
        self._stream: str = kv._stream

    async def get(self, key: str) -> tuple[bytes, int] | None:
        """The key's value and revision, or ``None`` if it has none (never written, deleted, purged)."""
        msg = await self._js.last(self._stream, self._prefix + key)
        if msg is None or (msg.headers is not None and msg.headers.get(_KV_OPERATION) in _REMOVED):
            return None
        assert msg.headers is not None
        return msg.data, int(msg.headers[_SEQUENCE])

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
