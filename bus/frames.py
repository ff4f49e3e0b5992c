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

from bus import subjects
from bus.codec import Codec
from bus.envelope import Header
from bus.errors import (
    BusClosed,
    Disconnected,
    ErrorCode,
    InvalidSubjectToken,
    MalformedPayload,
    NoResponders,
    NotConnected,
    RemoteError,
    RequestTimeout,
)

__all__ = ["ErrorBody", "FrameKind", "error_headers", "error_reply", "raise_if_error", "read_reply"]

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


def error_reply(exc: Exception) -> tuple[str, str]:
    """The code and message a handler's failure is answered with.

    A :class:`RemoteError` keeps its code (an error from further down the chain
    travels back as it was). A call of the handler's own that found nobody
    serving its subject (the agent it needs has no live replica, a restart say),
    or could not reach NATS, is ``unavailable``: the caller may try again. A call
    of its own that timed out is ``deadline_exceeded``. A name that cannot be a
    subject token is ``bad_request``. Anything else is ``internal``: a bug of
    the handler, logged with its traceback where it happened.
    """
    match exc:
        case RemoteError():
            return exc.code, exc.message
        case InvalidSubjectToken():
            return ErrorCode.BAD_REQUEST, str(exc)
        case NoResponders():
            return ErrorCode.UNAVAILABLE, _nobody_serves(exc.subject)
        case NotConnected() | Disconnected() | BusClosed():
            return ErrorCode.UNAVAILABLE, f"the message bus is unavailable: {exc}"
        case RequestTimeout():
            return ErrorCode.DEADLINE_EXCEEDED, str(exc)
        case _:
            return ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def _nobody_serves(subject: str) -> str:
    try:
        route = subjects.parse_agent_request(subject)
    except InvalidSubjectToken:
        return f"nobody serves {subject!r} right now"
    return f"agent {route.agent!r} has no live replica serving {route.skill!r} right now ({subject})"
