"""Conversation history: the turns of each tenant's conversations, for the next model call.

Turns are kept in Redis (a list per conversation, with a TTL) and in a bounded
in-process store written alongside, which answers while Redis is unreachable.
Before a model call the history is trimmed to the newest turns that fit a
token budget and a turn count.

Turns made while Redis is unreachable are written through once it is back:
they wait in a bounded buffer (``pending_max`` turns across conversations;
beyond it the oldest are dropped, counted in ``hivewire.history.dropped`` and
logged), which is written to Redis, in order, by a retry every
``retry_interval`` seconds and before any later read or write of this
process's history. What a process that dies during the outage had buffered is
lost, as is what the bound dropped.

Each write is applied once: it carries a write id (the caller's, such as the
turn's message id, or a new one), and a script adds the turns only if the
conversation has not taken that id yet. A write whose reply was lost (Redis
stopped or timed out after applying it) can so be written again safely, and a
turn recorded twice (redelivered) is in the history once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import metrics

from agents.llm.messages import ChatMessage, estimate_tokens
from agents.redisstore import RedisStore
from bus import subjects

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import redis.asyncio

    from agents.settings import AgentSettings

__all__ = ["ConversationHistory", "estimate_tokens", "trim"]

log = logging.getLogger(__name__)

# Appends a write's turns unless the conversation has taken its id already.
# KEYS: the history list, its write ids (a sorted set scored by time).
# ARGV: write id, time, turns kept, write ids kept, ttl seconds, then the turns.
_APPEND_ONCE = """
if redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1]) == 0 then
  return 0
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[4]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('RPUSH', KEYS[1], unpack(ARGV, 6))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
# Write ids remembered per conversation: at least this many, or twice its turns.
_WRITE_IDS = 64


def trim(turns: list[ChatMessage], *, max_turns: int, token_budget: int) -> list[ChatMessage]:
    """The newest turns that fit both limits, oldest first."""
    kept: list[ChatMessage] = []
    used = 0
    for turn in reversed(turns[-max_turns:] if max_turns > 0 else []):
        cost = estimate_tokens(turn)
        if used + cost > token_budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


class ConversationHistory:
    """Appends and loads conversation turns; one instance per process."""

    def __init__(
        self,
        redis: RedisStore,
        *,
        ttl: float,
        max_turns: int,
        token_budget: int,
        local_conversations: int = 1000,
        pending_max: int = 10_000,
        retry_interval: float = 2.0,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        """Args:
        redis: where history lives (shared by every process and replica).
        ttl: seconds a conversation's history lives after its last turn.
        max_turns: turns kept per conversation, and the default for :meth:`load`.
        token_budget: default token budget for :meth:`load`.
        local_conversations: conversations the in-process store keeps (least recent dropped).
        pending_max: turns made during a Redis outage kept to write once it is back.
        retry_interval: seconds between attempts to write them while Redis is away.
        """
        self._redis = redis
        self._ttl = ttl
        self.max_turns = max_turns
        self.token_budget = token_budget
        self._local: OrderedDict[str, tuple[float, list[ChatMessage]]] = OrderedDict()
        self._local_max = local_conversations
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(ChatMessage)
        # Key -> writes Redis has not got yet (write id, encoded turns), the conversation that
        # waited longest first.
        self._pending: OrderedDict[str, list[_Write]] = OrderedDict()
        self._pending_turns = 0
        self._pending_max = pending_max
        self._retry_interval = retry_interval
        self._writing = asyncio.Lock()
        self._retrying: asyncio.Task[None] | None = None
        self._dropped_since_flush = 0
        self._script: Any = None  # the append script, registered on first use
        meter = metrics.get_meter("hivewire.history", meter_provider=meter_provider)
        self._dropped = meter.create_counter(
            "hivewire.history.dropped",
            unit="{turn}",
            description="Turns made during a Redis outage and dropped before it was back (buffer full)",
        )

    @classmethod
    def from_settings(
        cls,
        redis: RedisStore,
        settings: AgentSettings,
        *,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> ConversationHistory:
        """The history the process's settings describe (``HIVEWIRE_HISTORY_*``), kept in ``redis``."""
        return cls(
            redis,
            ttl=settings.history_ttl,
            max_turns=settings.history_max_turns,
            token_budget=settings.history_token_budget,
            pending_max=settings.history_pending_max,
            retry_interval=settings.redis_retry_interval,
            meter_provider=meter_provider,
        )

    @property
    def pending(self) -> int:
        """Turns made during a Redis outage that Redis has not got yet."""
        return self._pending_turns

    async def append(
        self, tenant: str, context_id: str, *turns: ChatMessage, write_id: str | None = None
    ) -> None:
        """Add ``turns`` to the end of the conversation (in Redis once it is reachable).

        ``write_id`` names the write: a second append with the id the conversation has taken
        already adds nothing to Redis (a new id when not given).
        """
        if not turns:
            return
        key = subjects.history_key(tenant, context_id)
        self._append_local(key, turns)
        write = _Write(
            subjects.history_writes_key(tenant, context_id),
            write_id or uuid.uuid4().hex,
            [self._encoder.encode(turn) for turn in turns],
        )
        if self._pending or self._writing.locked():
            # Turns are waiting for Redis: these go after them, in order.
            self._buffer(key, write)
            await self.flush()
            return
        if not await self._redis.run(self._push(key, write), False) and self._redis.configured:
            self._buffer(key, write)

    async def flush(self) -> bool:
        """Write the turns made during a Redis outage; True when none is left waiting."""
        async with self._writing:
            while self._pending:
                key, writes = self._pending.popitem(last=False)
                while writes:
                    if not await self._redis.run(self._push(key, writes[0]), False):
                        # Still away: back at the head of the line, before any turn added meanwhile.
                        self._pending[key] = writes + self._pending.pop(key, [])
                        self._pending.move_to_end(key, last=False)
                        return False
                    self._pending_turns -= len(writes.pop(0).turns)
            if self._dropped_since_flush:
                log.warning(
                    "Redis is back; the conversation history of the outage is written, "
                    "except %d turns dropped when the buffer was full",
                    self._dropped_since_flush,
                )
                self._dropped_since_flush = 0
            return True

    async def close(self) -> None:
        """Try once more to write what waits for Redis, then stop retrying."""
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
            self._retrying = None
        if self._pending:
            await self.flush()
        if self._pending:
            log.warning("%d turns of conversation history never reached Redis", self._pending_turns)

    def _push(self, key: str, write: _Write) -> Callable[[redis.asyncio.Redis], Awaitable[bool]]:
        async def push(r: redis.asyncio.Redis) -> bool:
            if self._script is None:
                self._script = r.register_script(_APPEND_ONCE)
            keep_ids = max(_WRITE_IDS, 2 * self.max_turns)
            args = [write.id, time.time(), self.max_turns, keep_ids, max(1, int(self._ttl)), *write.turns]
            await self._script(keys=[key, write.ids_key], args=args)
            return True

        return push

    def _buffer(self, key: str, write: _Write) -> None:
        """Keep a write Redis could not take, to make once it is back (the oldest turns dropped
        past the bound)."""
        waiting = self._pending.setdefault(key, [])
        waiting.append(write)
        self._pending_turns += len(write.turns)
        # Redis keeps the newest max_turns of a conversation anyway.
        excess = sum(len(w.turns) for w in waiting) - self.max_turns
        while excess > 0:
            _drop_oldest_turn(waiting)
            self._pending_turns -= 1
            excess -= 1
        while self._pending_turns > self._pending_max:
            oldest = next(iter(self._pending))
            _drop_oldest_turn(self._pending[oldest])
            if not self._pending[oldest]:
                del self._pending[oldest]
            self._pending_turns -= 1
            self._dropped.add(1)
            if self._dropped_since_flush == 0:
                log.warning(
                    "Redis is still away and %d turns of history wait for it: dropping the oldest "
                    "(HIVEWIRE_HISTORY_PENDING_MAX)",
                    self._pending_max,
                )
            self._dropped_since_flush += 1
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        """Write the waiting turns as soon as Redis takes them (tried every ``retry_interval``)."""
        while self._pending:
            await asyncio.sleep(self._retry_interval)
            await self.flush()

    async def load(
        self,
        tenant: str,
        context_id: str,
        *,
        max_turns: int | None = None,
        token_budget: int | None = None,
    ) -> list[ChatMessage]:
        """The newest turns that fit the limits (the instance's defaults if not given), oldest first."""
        key = subjects.history_key(tenant, context_id)
        if self._pending:
            await self.flush()  # a read after an outage sees the turns made during it

        async def read(r: redis.asyncio.Redis) -> list[bytes | str]:
            return await r.lrange(key, 0, -1)

        stored: list[bytes | str] | None = None
        if key not in self._pending:  # else Redis is still away for it: the local turns are newer
            stored = await self._redis.run(read, None)
        turns = (
            [self._decoder.decode(item) for item in stored] if stored is not None else self._load_local(key)
        )
        return trim(
            turns,
            max_turns=self.max_turns if max_turns is None else max_turns,
            token_budget=self.token_budget if token_budget is None else token_budget,
        )

    async def clear(self, tenant: str, context_id: str) -> None:
        """Forget the conversation."""
        key = subjects.history_key(tenant, context_id)
        self._local.pop(key, None)
        waiting = self._pending.pop(key, [])
        self._pending_turns -= sum(len(write.turns) for write in waiting)
        await self._redis.run(lambda r: r.delete(key, subjects.history_writes_key(tenant, context_id)), None)

    def _append_local(self, key: str, turns: tuple[ChatMessage, ...]) -> None:
        _, existing = self._local.pop(key, (0.0, []))
        kept = (existing + list(turns))[-self.max_turns :]
        self._local[key] = (time.monotonic() + self._ttl, kept)
        while len(self._local) > self._local_max:
            self._local.popitem(last=False)

    def _load_local(self, key: str) -> list[ChatMessage]:
        item = self._local.get(key)
        if item is None or item[0] < time.monotonic():
            return []
        return list(item[1])


class _Write(msgspec.Struct):
    """Turns to append as one write: the conversation's write-ids key, the write's id, the turns."""

    ids_key: str
    id: str
    turns: list[bytes]


def _drop_oldest_turn(writes: list[_Write]) -> None:
    """Drop the first turn of the first write (and that write once it has none)."""
    writes[0].turns.pop(0)
    if not writes[0].turns:
        writes.pop(0)
