"""The bus's error tree: every failure a caller of :mod:`bus` can see, each carrying its data."""

from __future__ import annotations

import enum

__all__ = [
    "AuthError",
    "BusClosed",
    "BusError",
    "ConnectError",
    "Disconnected",
    "EmbeddedServerError",
    "ErrorCode",
    "InvalidSubjectToken",
    "MalformedPayload",
    "NoResponders",
    "NotConnected",
    "PayloadTooLarge",
    "RemoteError",
    "RequestError",
    "RequestTimeout",
    "StreamBroken",
]


class ErrorCode(enum.StrEnum):
    """Well-known codes of error replies; services may send codes of their own."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    # A chain of agent-to-agent calls went deeper than the configured hop limit.
    HOP_LIMIT_EXCEEDED = "hop_limit_exceeded"
    # The skill needs more from the user (or their authorization) before it can go on.
    INPUT_REQUIRED = "input_required"
    AUTH_REQUIRED = "auth_required"


class BusError(Exception):
    """Root of every error raised by :mod:`bus`."""


class ConnectError(BusError):
    """No NATS server could be reached."""

    def __init__(self, servers: list[str], reason: str) -> None:
        self.servers = servers
        self.reason = reason
        super().__init__(f"cannot connect to NATS at {', '.join(servers)}: {reason}")


class AuthError(ConnectError):
    """The NATS server refused the credentials."""


class BusClosed(BusError):
    """The bus was used after it was closed."""

    def __init__(self) -> None:
        super().__init__("the bus is closed")


class InvalidSubjectToken(BusError, ValueError):
    """A name used inside a subject (tenant, agent, id) is not a valid subject token."""

    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"invalid {kind} {value!r}: use 1-64 characters from letters, digits, '-' and '_'")


class PayloadTooLarge(BusError):
    """A payload exceeds the server's maximum payload."""

    def __init__(self, size: int, max_payload: int) -> None:
        self.size = size
        self.max_payload = max_payload
        super().__init__(f"payload of {size} bytes exceeds the maximum of {max_payload} bytes")


class MalformedPayload(BusError):
    """Bytes that could not be decoded as the expected message type."""

    def __init__(self, expected: str, reason: str) -> None:
        self.expected = expected
        self.reason = reason
        super().__init__(f"malformed {expected}: {reason}")


class RequestError(BusError):
    """A request did not produce a reply."""

    def __init__(self, subject: str, message: str) -> None:
        self.subject = subject
        super().__init__(message)


class RequestTimeout(RequestError, TimeoutError):
    """No reply (or no next stream chunk) arrived before the deadline."""

    def __init__(self, subject: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(subject, f"no reply on {subject!r} within {timeout:.3f}s")


class NotConnected(RequestTimeout):
    """No reply before the deadline, and the connection to NATS was down: the bus is unavailable."""

    def __init__(self, subject: str, timeout: float) -> None:
        self.timeout = timeout
        RequestError.__init__(
            self, subject, f"no reply on {subject!r} within {timeout:.3f}s: the connection to NATS is down"
        )


class NoResponders(RequestError):
    """Nobody is subscribed to the subject, so the request was not delivered."""

    def __init__(self, subject: str) -> None:
        super().__init__(subject, f"no responders on {subject!r}")


class RemoteError(RequestError):
    """The responder answered with an error.

    Raise it in a handler to send a specific ``code`` (see :class:`ErrorCode`);
    any other exception a handler raises reaches the caller as ``internal``.
    """

    def __init__(self, code: str, message: str, *, subject: str = "") -> None:
        self.code = code
        self.message = message
        super().__init__(subject, f"{code}: {message}" + (f" (from {subject!r})" if subject else ""))


class StreamBroken(RequestError):
    """A streamed reply lost chunks (a gap in sequence numbers or a slow consumer)."""

    def __init__(self, subject: str, reason: str) -> None:
        self.reason = reason
        super().__init__(subject, f"stream from {subject!r} broken: {reason}")


class EmbeddedServerError(BusError):
    """The embedded NATS server could not be found, started or stopped."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"embedded NATS server: {reason}")


class Disconnected(BusError):
    """NATS is unreachable and the reconnect buffer is full, so nothing more can be sent."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"cannot send on {subject!r}: disconnected from NATS and the buffer is full")
