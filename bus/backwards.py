"""Reading a stream's messages on a subject filter backwards, newest first, a chunk at a time.

JetStream's consumers and gets read forwards. A batch direct get says, with
every message, how many messages matching its filter follow it
(``Nats-Num-Pending``): from those counts a reader finds the sequence from
which the newest N messages below a position begin, then reads them forwards
in one request. The server computes each count in proportion to the messages
that match the filter (a filter of one tenant's keys: that tenant's), never to
the whole stream; ``agents/listing.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bus.direct import DirectGets, Stored

__all__ = ["Backwards"]


class Backwards:
    """A stream's messages on a subject filter, newest first (descending stream sequence).

    It reads a chunk at a time: the counts the server returns tell how many
    matching messages lie between a sequence and the end of the stream, so a
    few probes find where the newest ``chunk`` below the cursor begin, and
    only about a chunk is read.

    Args:
        gets: direct gets on the stream's server.
        stream: the stream (it allows direct gets).
        subject: the filter (wildcards allowed).
        below: read messages stored before this sequence (``None``: to the end; 0: none).
        chunk: messages read at a time.
        on_chunk: awaited with each chunk read (oldest first), before it is handed out.
    """

    def __init__(
        self,
        gets: DirectGets,
        stream: str,
        subject: str,
        below: int | None,
        *,
        chunk: int,
        on_chunk: Callable[[list[Stored]], Awaitable[None]] | None = None,
    ) -> None:
        self._gets = gets
        self._stream = stream
        self._subject = subject
        self._chunk = chunk
        self._on_chunk = on_chunk
        # Read messages stored before this sequence (``None``: up to the end of the stream).
        self._below = below
        self._resume = _END if below is None else below
        self._done = below == 0
        self._total = 0  # matching messages in the whole stream
        self._above = 0  # ...from ``_below`` on
        self._first = 0  # the first one's sequence
        self._buffer: list[Stored] = []  # read, not yet taken, oldest first

    async def start(self) -> None:
        """Learn the counts (two requests at most)."""
        if self._done:
            return
        first = await self._probe(1)
        if first is None:
            self._done = True
            return
        self._first, self._total = first.seq, first.pending + 1
        if self._below is not None:
            self._above = await self._count_from(self._below)

    @property
    def remaining(self) -> int:
        """Matching messages not taken yet, by the server's counts."""
        if self._done:
            return len(self._buffer)
        return max(0, self._total - self._above) + len(self._buffer)

    @property
    def position(self) -> int:
        """Where a next page resumes: the sequence of the last message taken (0: nothing left)."""
        if self._done and not self._buffer:
            return 0
        return self._resume

    def finish(self) -> None:
        """Take nothing more from this source."""
        self._done = True
        self._buffer.clear()

    async def peek(self) -> Stored | None:
        """The newest message not taken yet (reading the next chunk if need be), or ``None``."""
        while not self._buffer and not self._done:
            await self._read_chunk()
        return self._buffer[-1] if self._buffer else None

    def take(self) -> Stored:
        """Take the message :meth:`peek` showed."""
        stored = self._buffer.pop()
        self._resume = stored.seq
        return stored

    async def _read_chunk(self) -> None:
        remaining = self._total - self._above
        if remaining <= 0:
            self._done = True
            return
        start = await self._chunk_start(min(self._chunk, remaining), remaining)
        below = _END if self._below is None else self._below
        chunk: list[Stored] = []
        seq = start
        while True:
            ask = 2 * self._chunk + 1
            got = await self._gets.batch(self._stream, subject=self._subject, seq=seq, batch=ask)
            chunk.extend(m for m in got if m.seq < below)
            if len(got) < ask or got[-1].seq >= below:
                break
            seq = got[-1].seq + 1
        self._above = chunk[0].pending + 1 if chunk else await self._count_from(start)
        self._below = start
        self._done = start <= self._first
        if self._on_chunk is not None and chunk:
            await self._on_chunk(chunk)
        self._buffer = chunk

    async def _chunk_start(self, want: int, remaining: int) -> int:
        """A sequence from which ``want`` to twice as many matching messages lie below ``_below``."""
        lo, lo_count = self._first, remaining
        if lo_count <= 2 * want:
            return lo
        if self._below is not None:
            hi = self._below
        else:
            last = await self._gets.last_on(self._stream, self._subject)
            hi = (last.seq if last is not None else lo) + 1
        hi_count = 0
        target = 1.5 * want
        for attempt in range(_PROBES):
            if hi - lo <= 1:
                break
            if attempt % 2:  # every other probe halves the range: never worse than bisection
                x = (lo + hi) // 2
            else:  # the others assume evenly spread messages
                x = lo + int((hi - lo) * (lo_count - target) / max(1, lo_count - hi_count))
            x = min(max(x, lo + 1), hi - 1)
            count = await self._count_from(x) - self._above
            if want <= count <= 2 * want:
                return x
            if count > 2 * want:
                lo, lo_count = x, count
            else:
                hi, hi_count = x, count
        return lo

    async def _probe(self, seq: int) -> Stored | None:
        got = await self._gets.batch(self._stream, subject=self._subject, seq=seq, batch=1)
        return got[0] if got else None

    async def _count_from(self, seq: int) -> int:
        found = await self._probe(seq)
        return 0 if found is None else found.pending + 1


_END = 2**63
# Probes spent finding where a chunk begins (half interpolation, half bisection).
_PROBES = 24
