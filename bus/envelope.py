"""Transport metadata that travels in NATS headers, apart from the payload."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping

import msgspec

from bus.errors import MalformedPayload

__all__ = ["Envelope", "Header", "next_message_id"]

# Message ids are made on every send: a random per-process prefix and a counter
# are unique without the cost of a random UUID (a system call) per message.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count()


def next_message_id() -> str:
    """A message id unique to this process run (random prefix, then a counter)."""
    return f"{_PREFIX}{next(_COUNTER):x}"


class Header:
    """The NATS header names Hivewire reads and writes."""

    # The standard NATS name, so JetStream de-duplicates on it without translation.
    MESSAGE_ID = "Nats-Msg-Id"
    TENANT = "Hivewire-Tenant"
    # Remaining time in milliseconds when the message was sent. Relative, not an
    # absolute timestamp, so clock skew between hosts cannot shorten or stretch it.
    TIMEOUT = "Hivewire-Timeout"
    REPLY_TO = "Hivewire-Reply-To"
    HOPS = "Hivewire-Hops"
    # Set on replies only.
    ERROR = "Hivewire-Error"
    FRAME = "Hivewire-Frame"
    SEQ = "Hivewire-Seq"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Who a message is for and how long it may take.

    Attributes:
        message_id: unique per message; JetStream de-duplicates on it.
        tenant: the tenant on whose behalf the message is sent.
        deadline: when the sender stops waiting, on this process's
            ``time.monotonic()`` clock; ``None`` for no deadline.
        reply_to: where results go when the transport's own reply subject
            cannot carry them (durable tasks).
        hops: how many agent-to-agent calls led to this message.
    """

    message_id: str = msgspec.field(default_factory=next_message_id)
    tenant: str | None = None
    deadline: float | None = None
    reply_to: str | None = None
    hops: int = 0

    @classmethod
    def with_timeout(cls, timeout: float, **fields: object) -> Envelope:
        """An envelope whose deadline is ``timeout`` seconds from now."""
        return cls(deadline=time.monotonic() + timeout, **fields)  # type: ignore[arg-type]

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left before the deadline (negative once passed), or ``None``."""
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() if now is None else now)

    def to_headers(self, now: float | None = None) -> dict[str, str]:
        """The NATS headers that carry this envelope."""
        headers = {Header.MESSAGE_ID: self.message_id}
        if self.tenant is not None:
            headers[Header.TENANT] = self.tenant
        if self.deadline is not None:
            remaining = self.deadline - (time.monotonic() if now is None else now)
            headers[Header.TIMEOUT] = str(int(remaining * 1000)) if remaining > 0 else "0"
        if self.reply_to is not None:
            headers[Header.REPLY_TO] = self.reply_to
        if self.hops:
            headers[Header.HOPS] = str(self.hops)
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None, now: float | None = None) -> Envelope:
        """Read an envelope from received headers; absent headers take their defaults.

        Raises:
            MalformedPayload: a header holds a value of the wrong form.
        """
        if not headers:
            return cls()
        timeout = headers.get(Header.TIMEOUT)
        hops = headers.get(Header.HOPS)
        try:
            deadline = (
                None if timeout is None else (time.monotonic() if now is None else now) + int(timeout) / 1000
            )
            hop_count = 0 if hops is None else int(hops)
        except ValueError as exc:
            raise MalformedPayload(expected="envelope headers", reason=str(exc)) from exc
        if hop_count < 0:
            raise MalformedPayload(expected="envelope headers", reason=f"negative hops {hop_count}")
        return cls(
            message_id=headers.get(Header.MESSAGE_ID) or next_message_id(),
            tenant=headers.get(Header.TENANT),
            deadline=deadline,
            reply_to=headers.get(Header.REPLY_TO),
            hops=hop_count,
        )
