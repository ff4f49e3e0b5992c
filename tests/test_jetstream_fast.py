"""The bus's lean JetStream writes: the acknowledgements and the errors are nats-py's own."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
import pytest
from nats.js import api

from bus import Bus
from bus.a2a import new_id
from bus.jetstream_fast import FastJetStream, FastKeyValue


async def test_a_write_is_acknowledged_and_a_repeated_message_id_is_a_duplicate(bus: Bus) -> None:
    js = bus.jetstream()
    stream = f"FAST_{new_id()[:8]}"
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"fast.{stream}"]))
    fast = FastJetStream(js)
    acks = await asyncio.gather(*(fast.publish(f"fast.{stream}", b"x%d" % n) for n in range(100)))
    assert sorted(a.seq for a in acks) == list(range(1, 101))
    assert {a.stream for a in acks} == {stream}
    first = await fast.publish(f"fast.{stream}", b"once", headers={"Nats-Msg-Id": "m-1"})
    again = await fast.publish(f"fast.{stream}", b"once", headers={"Nats-Msg-Id": "m-1"})
    assert (first.duplicate, again.duplicate, again.seq) == (False, True, first.seq)


async def test_a_subject_no_stream_takes_is_refused_at_once(bus: Bus) -> None:
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await asyncio.wait_for(FastJetStream(bus.jetstream()).publish("fast.nowhere", b"x"), 5)


async def test_no_acknowledgement_is_a_timeout(bus: Bus, other_bus: Bus) -> None:
    # Someone listens on the subject, but no stream stores it: nobody acknowledges.
    async def ignore(msg: object) -> None:
        pass

    await other_bus._nc.subscribe("fast.silent", cb=ignore)
    # Twice, as Service.start does: nats-py's first PING can overtake the SUB still buffered.
    await other_bus._nc.flush()
    await other_bus._nc.flush()
    fast = FastJetStream(bus._nc.jetstream(timeout=0.3))
    with pytest.raises(nats.errors.TimeoutError):
        await fast.publish("fast.silent", b"x")
    # The inbox keeps working for later writes.
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await fast.publish("fast.nowhere", b"x")


async def test_a_compare_and_set_that_lost_is_a_wrong_last_sequence(bus: Bus) -> None:
    kv = await bus.jetstream().create_key_value(bucket=f"fast_{new_id()[:8]}", history=1)
    writes = FastKeyValue(kv)
    first = await writes.update("k", b"1", last=0)
    second = await writes.update("k", b"2", last=first)
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await writes.update("k", b"3", last=first)
    assert (await kv.get("k")).value == b"2"
    assert await writes.put("k", b"4") > second


async def test_a_read_finds_the_last_value_and_its_revision_or_nothing(bus: Bus) -> None:
    kv = await bus.jetstream().create_key_value(bucket=f"fast_{new_id()[:8]}", history=1, direct=True)
    fast = FastKeyValue(kv)
    assert await fast.get("missing") is None
    revision = await fast.put("a.k", b"one")
    assert await fast.get("a.k") == (b"one", revision)
    revision = await fast.update("a.k", b"two", last=revision)
    assert await fast.get("a.k") == (b"two", revision)
    await kv.delete("a.k")
    assert await fast.get("a.k") is None
    await fast.put("b.k", b"other")
    await kv.purge("b.k")
    assert await fast.get("b.k") is None


async def test_the_last_message_on_a_wildcard_subject_is_read_directly(bus: Bus) -> None:
    js = bus.jetstream()
    stream = f"FAST_{new_id()[:8]}"
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"fast.{stream}.>"], allow_direct=True))
    fast = FastJetStream(js)
    await fast.publish(f"fast.{stream}.a.x", b"1")
    await fast.publish(f"fast.{stream}.b.x", b"2")
    found = await fast.last(stream, f"fast.{stream}.*.x")
    assert found is not None
    assert (found.data, found.headers and found.headers["Nats-Subject"]) == (b"2", f"fast.{stream}.b.x")
    assert await fast.last(stream, f"fast.{stream}.*.y") is None
    with pytest.raises(nats.js.errors.NoStreamResponseError):  # no such stream answers
        await fast.last("FAST_NOWHERE", "fast.nowhere")
