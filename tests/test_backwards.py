"""Reading a stream backwards: newest first across chunks, from any position, only the filter's messages."""

from __future__ import annotations

from nats.js import api

from bus import Bus
from bus.a2a import new_id
from bus.backwards import Backwards
from bus.direct import DirectGets


async def test_a_filter_is_read_newest_first_in_chunks_from_any_position(bus: Bus) -> None:
    js = bus.jetstream()
    stream = f"BACK_{new_id()[:8]}"
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"back.{stream}.>"], allow_direct=True))
    mine = []
    for i in range(300):
        ack = await js.publish(f"back.{stream}.{'a' if i % 3 else 'b'}.{i}", b"%d" % i)
        if i % 3:
            mine.append(ack.seq)
    gets = DirectGets(js)

    async def read(below: int | None, take: int | None = None) -> list[int]:
        reader = Backwards(gets, stream, f"back.{stream}.a.*", below, chunk=7)
        await reader.start()
        seqs = []
        while (take is None or len(seqs) < take) and await reader.peek() is not None:
            seqs.append(reader.take().seq)
        return seqs

    newest = list(reversed(mine))
    assert await read(None) == newest
    first = await read(None, take=50)
    assert first == newest[:50]
    assert await read(first[-1]) == newest[50:]  # from where the first read stopped
    assert await read(0) == []
