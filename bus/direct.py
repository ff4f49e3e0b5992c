"""Batch direct gets: many stored messages of a stream per request, read by any server holding it.

JetStream's direct get API (streams created with ``allow_direct``) answers a
batch request with the matching messages, one per reply, then an end-of-batch
status. Each stored message comes with its subject, stream sequence, time
and, for batch requests, how many messages match the filter after it
(``Nats-Num-Pending``): counts the server keeps, which is what lets a reader
walk a stream backwards without reading what it skips (see
:mod:`agents.listing`). nats-py (2.16) has no batch form, so this speaks the
API directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bus.errors import BusError

__all__ = ["DirectGetError", "DirectGets", "Stored"]

_END_OF_BATCH = "204"
_NOT_FOUND = "404"
_timestamp = msgspec.json.Decoder(datetime)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Stored:
    """A message as the stream stored it."""

    subject: str
    seq: int
    # Microseconds since the epoch, by the server's clock when it stored the message.
    time_us: int
    # Messages matching the request's filter after this one (batch requests only, else 0).
    pending: int
    data: bytes
    headers: dict[str, str]


class DirectGetError(BusError):
    """The server refused a direct get (other than "no such message")."""

    def __init__(self, stream: str, status: str, description: str) -> None:
        self.stream = stream
        self.status = status
        self.description = description
        super().__init__(f"direct get on {stream}: {status} {description}")


class DirectGets:
    """Batch and multi-subject direct gets on the streams of one JetStream context.

    Args:
        js: the context (its connection, API prefix and timeout are used).
    """

    def __init__(self, js: JetStreamContext) -> None:
        # nats-py keeps both private; the context is the only handle callers have.
        self._nc = js._nc
        self._prefix: str = js._prefix
        self._timeout: float = js._timeout
        self._tokens = itertools.count()

    async def batch(self, stream: str, *, subject: str, seq: int, batch: int) -> list[Stored]:
        """Up to ``batch`` messages on ``subject`` (wildcards allowed) from stream sequence ``seq`` on.

        Raises:
            DirectGetError: the server refused the request.
            nats.errors.TimeoutError: the batch did not end within the context's timeout.
        """
        request = {"seq": max(seq, 1), "next_by_subj": subject, "batch": batch}
        return await self._request(stream, request)

    async def last_on(self, stream: str, subject: str) -> Stored | None:
        """The last message on ``subject`` (wildcards allowed), or ``None`` if none matches.

        Raises:
            DirectGetError: the server refused the request.
        """
        found = await self._request(stream, {"last_by_subj": subject}, single=True)
        return found[0] if found else None

    async def last(self, stream: str, subjects: Sequence[str]) -> list[Stored]:
        """The last message on each of ``subjects`` that has one (at most 1,024 subjects).

        Raises:
            DirectGetError: the server refused the request.
        """
        if not subjects:
            return []
        return await self._request(stream, {"multi_last": list(subjects), "batch": len(subjects)})

    async def _request(
        self, stream: str, request: dict[str, object], *, single: bool = False
    ) -> list[Stored]:
        inbox = f"{self._nc.new_inbox()}.{next(self._tokens):x}"
        sub = await self._nc.subscribe(inbox)
        found: list[Stored] = []
        try:
            await self._nc.publish(
                f"{self._prefix}.DIRECT.GET.{stream}", msgspec.json.encode(request), reply=inbox
            )
            while True:
                try:
                    msg = await sub.next_msg(timeout=self._timeout)
                except nats.errors.TimeoutError:
                    raise nats.errors.TimeoutError from None
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is not None and not msg.data:
                    if status in (_END_OF_BATCH, _NOT_FOUND):
                        return found
                    raise DirectGetError(stream, status, str(headers.get("Description", "")))
                found.append(_stored(msg, headers))
                if single:  # a single get has no end-of-batch marker
                    return found
        finally:
            await sub.unsubscribe()


def _stored(msg: Msg, headers: dict[str, str]) -> Stored:
    stamp = headers.get("Nats-Time-Stamp", "")
    when = _timestamp.decode(b'"' + stamp.encode() + b'"') if stamp else None
    return Stored(
        subject=headers.get("Nats-Subject", ""),
        seq=int(headers.get("Nats-Sequence", "0")),
        time_us=0 if when is None else (when - _EPOCH) // _MICROSECOND,
        pending=int(headers.get("Nats-Num-Pending", "0")),
        data=msg.data,
        headers=headers,
    )
