"""Conversation history: the turns of each tenant's conversations, for the next model call.

Turns are kept in Redis (a list per conversation, with a TTL) and in a bounded
in-process store written alongside, which answers while Redis is unreachable.
Before a model call the history is trimmed to the newest turns that fit a
token budget and a turn count.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import msgspec

from agents.llm.messages import ChatMessage, estimate_tokens
from agents.redisstore import RedisStore
from bus import subjects

if TYPE_CHECKING:
    import redis.asyncio

    from agents.settings import AgentSettings

__all__ = ["ConversationHistory", "estimate_tokens", "trim"]


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
    ) -> None:
        """Args:
        redis: where history lives (shared by every process and replica).
        ttl: seconds a conversation's history lives after its last turn.
        max_turns: turns kept per conversation, and the default for :meth:`load`.
        token_budget: default token budget for :meth:`load`.
        local_conversations: conversations the in-process store keeps (least recent dropped).
        """
        self._redis = redis
        self._ttl = ttl
        self.max_turns = max_turns
        self.token_budget = token_budget
        self._local: OrderedDict[str, tuple[float, list[ChatMessage]]] = OrderedDict()
        self._local_max = local_conversations
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(ChatMessage)

    @classmethod
    def from_settings(cls, redis: RedisStore, settings: AgentSettings) -> ConversationHistory:
        """The history the process's settings describe (``HIVEWIRE_HISTORY_*``), kept in ``redis``."""
        return cls(
            redis,
            ttl=settings.history_ttl,
            max_turns=settings.history_max_turns,
            token_budget=settings.history_token_budget,
        )

    async def append(self, tenant: str, context_id: str, *turns: ChatMessage) -> None:
        """Add ``turns`` to the end of the conversation."""
        key = subjects.history_key(tenant, context_id)
        self._append_local(key, turns)
        encoded = [self._encoder.encode(turn) for turn in turns]

        async def push(r: redis.asyncio.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.rpush(key, *encoded)
            pipe.ltrim(key, -self.max_turns, -1)
            pipe.expire(key, max(1, int(self._ttl)))
            await pipe.execute()

        await self._redis.run(push, None)

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

        async def read(r: redis.asyncio.Redis) -> list[bytes | str]:
            return await r.lrange(key, 0, -1)

        stored: list[bytes | str] | None = await self._redis.run(read, None)
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
        await self._redis.run(lambda r: r.delete(key), None)

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
