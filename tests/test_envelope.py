"""The envelope: transport metadata in NATS headers, apart from the payload."""

from __future__ import annotations

import pytest

from bus import Envelope, Header, MalformedPayload


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
