"""The envelope: transport metadata in NATS headers, apart from the payload."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from bus import Envelope, Header, MalformedPayload
from bus.connection import Connection


def test_an_envelope_survives_the_trip_through_headers() -> None:
    sent = Envelope(message_id="m-1", tenant="acme", deadline=100.0, reply_to="hw.acme.ctx.c.events", hops=2)
    headers = sent.to_headers(now=98.5)
    assert headers == {
        Header.MESSAGE_ID: "m-1",
        Header.TENANT: "acme",
        Header.TIMEOUT: "1500",
        Header.REPLY_TO: "hw.acme.ctx.c.events",
        Header.HOPS: "2",
    }
    # The receiver's clock differs; only the remaining time travels.
    received = Envelope.from_headers(headers, now=5000.0)
    assert received == Envelope(
        message_id="m-1", tenant="acme", deadline=5001.5, reply_to="hw.acme.ctx.c.events", hops=2
    )


def test_the_message_id_is_the_one_jetstream_deduplicates_on() -> None:
    assert Header.MESSAGE_ID == "Nats-Msg-Id"


def test_absent_headers_take_defaults_and_a_fresh_id() -> None:
    envelope = Envelope.from_headers(None)
    assert envelope.tenant is None
    assert envelope.deadline is None
    assert envelope.hops == 0
    assert envelope.message_id


def test_a_passed_deadline_travels_as_zero() -> None:
    assert Envelope(deadline=10.0).to_headers(now=11.0)[Header.TIMEOUT] == "0"


@pytest.mark.parametrize(
    "headers",
    [{Header.TIMEOUT: "soon"}, {Header.HOPS: "many"}, {Header.HOPS: "-1"}],
)
def test_malformed_headers_are_a_typed_error(headers: dict[str, str]) -> None:
    with pytest.raises(MalformedPayload) as caught:
        Envelope.from_headers(headers)
    assert caught.value.expected == "envelope headers"


# The bus builds and parses header blocks itself (nats-py's own code was the
# largest cost of a request); the bytes sent and the dict received must stay
# exactly nats-py's, for any header, odd ones included.
_names = st.one_of(
    st.sampled_from(
        [Header.MESSAGE_ID, Header.TIMEOUT, "traceparent", " padded ", "", "a b", "é", "a:b", "a(b"]
    ),
    st.text(max_size=8),
)


async def _sent(client: NATS, headers: dict[str, str]) -> bytes | str:
    client._pending, client._pending_data_size, client._flush_queue = [], 0, None
    try:
        await client._send_publish("hw.acme.agent.a.s", "_INBOX.x.1", b"{}", 2, headers)
    except nats.errors.BadHeaderError as exc:
        return str(exc)
    return b"".join(client._pending)


@settings(max_examples=500)
@given(st.one_of(st.none(), st.dictionaries(_names, st.text(max_size=20), max_size=5)))
def test_headers_are_sent_as_nats_py_sends_them(headers: dict[str, str] | None) -> None:
    assert asyncio.run(_sent(Connection(), headers)) == asyncio.run(_sent(NATS(), headers))  # type: ignore[arg-type]


_lines = st.tuples(
    st.one_of(
        st.binary(max_size=10), st.sampled_from([b"Nats-Msg-Id", b" padded ", b"a b", b"\x1c", b"x\xff"])
    ),
    st.sampled_from([b":", b": ", b"", b" : "]),
    st.binary(max_size=10),
)


@settings(max_examples=500)
@given(st.lists(_lines, max_size=5))
def test_headers_are_read_as_nats_py_reads_them(lines: list[tuple[bytes, bytes, bytes]]) -> None:
    raw = b"\r\n".join(name + colon + value for name, colon, value in lines) + b"\r\n\r\n"
    assert Connection._parse_header_lines(raw) == NATS._parse_header_lines(raw)


async def _published(client: NATS, subject: str, reply: str, payload: bytes) -> bytes | str:
    client._pending, client._pending_data_size, client._flush_queue = [], 0, None
    client._status, client._max_payload = NATS.CONNECTED, 8
    try:
        await client.publish(subject, payload, reply=reply)
    except nats.errors.Error as exc:
        return type(exc).__name__
    return b"".join(client._pending)


_subjects = st.one_of(
    st.sampled_from(["hw.a.b", "", "a b", "a\r\nPUB x 1", "_INBOX.x.1", "a\tb"]), st.text(max_size=6)
)


@settings(max_examples=300)
@given(_subjects, st.one_of(st.just(""), _subjects), st.binary(max_size=12))
def test_publishing_sends_and_refuses_what_nats_py_does(subject: str, reply: str, payload: bytes) -> None:
    # The bus's publish folds nats-py's checks into one test; what it sends,
    # and the error it raises for a bad subject or an oversized payload, must not change.
    ours = asyncio.run(_published(Connection(), subject, reply, payload))
    assert ours == asyncio.run(_published(NATS(), subject, reply, payload))
