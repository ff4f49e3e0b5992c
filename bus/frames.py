"""Reply framing: how success, error and streamed replies are told apart on the wire.

A plain reply is the encoded payload with no Hivewire headers. An error reply
carries ``Hivewire-Error: <code>`` and an :class:`ErrorBody`. A streamed reply
is a sequence of frames on the requester's inbox, each with ``Hivewire-Frame``
(``data``, ``end`` or ``error``) and ``Hivewire-Seq`` (0, 1, 2, ...); the
``end`` frame's sequence number is the count of data frames, so a lost chunk
is always detected.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from nats.aio.msg import Msg

from bus.codec import Codec
from bus.envelope import Header
from bus.errors import ErrorCode, MalformedPayload, NoResponders, RemoteError, RequestTimeout

__all__ = ["ErrorBody", "FrameKind", "error_headers", "raise_if_error", "read_reply"]

T = TypeVar("T")

# NATS sends a status-only message with this code when a request has no subscriber.
_STATUS = "Status"
_NO_RESPONDERS = "503"


class FrameKind:
    """Values of the ``Hivewire-Frame`` header."""

    DATA = "data"
    END = "end"
    ERROR = "error"


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of an error reply."""

    code: str
    message: str


def error_headers(code: str) -> dict[str, str]:
    """Headers that mark a reply as an error with ``code``."""
    return {Header.ERROR: code}


def raise_if_error(msg: Msg, subject: str, codec: Codec, timeout: float) -> None:
    """Raise the error a reply (or stream frame) carries, if it carries one.

    A responder that gave up at the request's deadline is the caller's own
    timeout, reported by the other side: whichever arrives first, the caller
    gets :class:`RequestTimeout` for a request that waited ``timeout`` seconds.

    Raises:
        NoResponders: NATS reports nobody subscribed to ``subject``.
        RequestTimeout: the responder gave up at the request's deadline.
        RemoteError: the responder replied with another error.
    """
    headers = msg.headers
    if not headers:
        return
    if headers.get(_STATUS) == _NO_RESPONDERS:
        raise NoResponders(subject)
    code = headers.get(Header.ERROR)
    if code is None:
        return
    if code == ErrorCode.DEADLINE_EXCEEDED:
        raise RequestTimeout(subject, timeout)
    try:
        body = codec.decode(msg.data, ErrorBody)
    except MalformedPayload:
        body = ErrorBody(code=code, message=msg.data.decode("utf-8", "replace"))
    raise RemoteError(code, body.message, subject=subject)


def read_reply(msg: Msg, subject: str, reply_type: type[T], codec: Codec, timeout: float) -> T:
    """Decode a reply to a request on ``subject``, raising the error it carries instead.

    Raises:
        NoResponders: NATS reports nobody subscribed to ``subject``.
        RequestTimeout: the responder gave up at the request's deadline.
        RemoteError: the responder replied with an error.
        MalformedPayload: the reply does not decode as ``reply_type``.
    """
    raise_if_error(msg, subject, codec, timeout)
    return codec.decode(msg.data, reply_type)
