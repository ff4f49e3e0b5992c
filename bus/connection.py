"""The bus's NATS connection: nats-py's client with a shorter path for requests and replies.

It relies on private parts of nats-py 2.16 (``_process_msg``, ``_send_publish``,
``_parse_header_lines``, ``_process_pong`` and ``_pongs``, a subscription's
``_pending_queue``); ``pyproject.toml``
pins nats-py to 2.16.x, and ``tests/test_envelope.py`` checks the header bytes
and parsing against nats-py's own code, so an upgrade that changes them fails
there first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import nats.aio.client
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

__all__ = ["Connection"]


class Connection(NATS):
    """nats-py's client with a shorter path for requests and replies, the hottest path of the mesh.

    Two costs of nats-py 2.16 dominate a request in Python, and are cut here:

    - Headers: every request carries some (message id, remaining time), and
      nats-py builds them with a regular expression per name and parses them
      character by character. The overrides below give the same bytes and the
      same dict; what they cannot handle the usual way goes to nats-py's code.
    - Delivery: nats-py puts every message in its subscription's queue, for a
      task that awaits the callback. A receiver registered with
      :meth:`deliver_directly` gets the message as soon as it is parsed instead:
      one event-loop turn and a queue hop less per message. Whenever it is not
      accepting (a service at its concurrency limit) or messages are already
      queued, delivery goes through the queue as usual, so order, bounded
      pending limits, slow-consumer errors and drain all stay nats-py's.

    And one fix: a PONG that answers a flush which timed out meanwhile is taken
    quietly (see :meth:`_process_pong`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, tuple[Callable[[], bool], Callable[[Msg], None]]] = {}

    def deliver_directly(
        self, sid: int, *, deliver: Callable[[Msg], None], accepting: Callable[[], bool] | None = None
    ) -> None:
        """Hand messages of subscription ``sid`` to ``deliver`` while ``accepting()`` is true.

        Without ``accepting``, always (a reply inbox, a pull consumer's inbox).
        """
        if accepting is None:
            accepting = _always
        self._direct[sid] = (accepting, deliver)

    def stop_delivering(self, sid: int) -> None:
        """Deliver the messages of subscription ``sid`` through its queue again."""
        self._direct.pop(sid, None)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        direct = self._direct.get(sid)
        if direct is not None:
            sub = self._subs.get(sid)
            if (
                sub is not None
                and sub._pending_queue.empty()
                and sub._max_msgs == 0
                and sub._jsi is None
                and direct[0]()
            ):
                stats = self.stats
                stats["in_msgs"] += 1
                stats["in_bytes"] += len(data)
                sub._received += 1
                if not headers:
                    parsed = None
                elif _OWN_HEADER_PARSING and headers[8:10] == b"\r\n":
                    # "NATS/1.0" and no status: plain header lines, what _process_headers parses here.
                    parsed = self._parse_header_lines(headers[10:]) or None
                else:
                    parsed = await self._process_headers(headers)
                msg = self._build_message(sid, subject, reply, data, parsed)
                if msg is not None:
                    try:
                        direct[1](msg)
                    except Exception as exc:  # noqa: BLE001 - as nats-py does for a callback: the read loop survives
                        await self._error_cb(exc)
                return
        await super()._process_msg(sid, subject, reply, data, headers)

    async def _process_pong(self) -> None:
        # nats-py 2.16 sets the result of the oldest PING's future, which a flush() that timed out
        # has cancelled: the InvalidStateError that raised ended the read loop, which logged a
        # traceback and dropped the connection to reconnect (seen when a server paused for longer
        # than a flush waits, then answered).
        if self._pongs:
            future = self._pongs.pop(0)
            if not future.done():
                future.set_result(True)
            self._pongs_received += 1
            self._pings_outstanding = 0

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", headers: dict[str, Any] | None = None
    ) -> None:
        """nats-py's ``publish``, its checks folded into one test for the usual case.

        Connected, within the size limit, and subjects without whitespace: sent
        at once. Anything else goes through nats-py's own ``publish``, which
        raises its usual errors.
        """
        size = len(payload)
        if (
            self._status == NATS.CONNECTED
            and size <= self._max_payload
            and subject
            and _BAD_SUBJECT.search(subject) is None
            and (not reply or _BAD_SUBJECT.search(reply) is None)
        ):
            await self._send_publish(subject, reply, payload, size, headers)
        else:
            await super().publish(subject, payload, reply, headers)

    async def _send_publish(
        self, subject: str, reply: str, payload: bytes, payload_size: int, headers: dict[str, Any] | None
    ) -> None:
        if not subject:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if headers is not None:
            block = _header_block(headers)
            command = b"".join(
                (
                    f"HPUB {subject} {reply} {len(block)} {len(block) + payload_size}\r\n".encode(),
                    block,
                    payload,
                    b"\r\n",
                )
            )
        else:
            command = b"".join((f"PUB {subject} {reply} {payload_size}\r\n".encode(), payload, b"\r\n"))
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        parsed: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            if not line:
                continue
            name, colon, value = line.partition(b":")
            key = _NAMES.get(name) if colon else None
            if key is None and colon and _TOKEN.fullmatch(name):
                key = name.decode()
                if len(_NAMES) < 1024:
                    _NAMES[name] = key
            if key is not None:
                parsed[key] = value.strip().decode("utf-8", "replace")
            else:
                # Not a plain "Name: value" line: nats-py's rules decide.
                parsed.update(NATS._parse_header_lines(line))
        return parsed


# nats-py parses header lines with fast_mail_parser instead when it is installed.
_OWN_HEADER_PARSING = getattr(nats.aio.client, "parse_email", None) is None
# Header names as HTTP tokens (RFC 9110), the names nats-py accepts.
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN = re.compile(_NAME.pattern.encode())
# Received header names already checked, and their text.
_NAMES: dict[bytes, str] = {}
# What nats-py refuses in a subject when publishing.
_BAD_SUBJECT = re.compile(r"[ \t\r\n]")
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
# "Name: " per header name already checked; names are few (ours, trace context).
_NAME_PREFIXES: dict[str, bytes] = {}


def _header_block(headers: dict[str, Any]) -> bytes:
    """The NATS/1.0 header block for ``headers``, as nats-py builds it.

    Raises:
        nats.errors.BadHeaderError: a name is not a valid header name.
    """
    lines = [b"NATS/1.0\r\n"]
    for name, value in headers.items():
        prefix = _NAME_PREFIXES.get(name)
        if prefix is None:
            key = name.strip()
            if not key:
                continue
            if not _NAME.fullmatch(key):
                raise nats.errors.BadHeaderError(key)
            prefix = key.encode() + b": "
            if len(_NAME_PREFIXES) < 1024:
                _NAME_PREFIXES[name] = prefix
        text = value.strip()
        if "\r" in text or "\n" in text:
            text = text.translate(_NEWLINES)
        lines.append(prefix + text.encode() + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _always() -> bool:
    return True
