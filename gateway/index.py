"""A tenant's conversations, most recently active first, a page at a time.

The records live in the ``hw_state`` bucket (``<tenant>.<id>.conversation``);
NATS reads a bucket forward only, in the order keys were last written, so a
newest-first page straight from it means reading all of the tenant's records.
The index is a Redis sorted set per tenant (id scored by last activity): a
page is one ``ZREVRANGEBYSCORE`` and one key-value read per conversation on
it, whatever the tenant's size.

The records stay the truth. A marker with an expiry says the set is
complete; when it is missing (first use, a Redis restart, or every
``reconcile`` seconds) the set is rebuilt from the records, which also brings
in what a replica could not index while Redis was down. Without Redis every
page reads the tenant's records (correct, and fine for a laptop's numbers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import TYPE_CHECKING

import msgspec

from agents.mesh import Mesh
from agents.redisstore import RedisStore
from bus import subjects
from gateway.http import decode_json
from gateway.problems import Problem

if TYPE_CHECKING:
    import redis.asyncio

    from gateway.turns import Conversation

__all__ = ["RECORD", "ConversationIndex", "Cursor"]

# The state key of a conversation's record.
RECORD = "conversation"


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """Where a page ended: the last conversation's activity time and id (pages go on below it)."""

    at: float
    id: str

    def encode(self) -> str:
        """The opaque form clients pass back."""
        return base64.urlsafe_b64encode(msgspec.json.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises: Problem: 400, not a cursor this gateway made."""
        try:
            return decode_json(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), cls)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise Problem(400, "bad-cursor", "Invalid cursor", "pass back the nextCursor of a page") from None


class ConversationIndex:
    """Pages of a tenant's conversations, newest activity first."""

    def __init__(self, mesh: Mesh, store: RedisStore, *, ttl: float, reconcile: float = 600.0) -> None:
        """Args:
        ttl: how long a conversation lives without activity (the state bucket's TTL).
        reconcile: seconds after which the index is rebuilt from the records.
        """
        self._mesh = mesh
        self._store = store
        self._ttl = ttl
        self._reconcile = reconcile

    async def touch(self, tenant: str, conversation: Conversation) -> None:
        """Record ``conversation``'s latest activity (a no-op while Redis is down)."""
        key = subjects.conversation_index_key(tenant)
        at = _activity(conversation)

        async def add(r: redis.asyncio.Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {conversation.id: at})
                pipe.expire(key, max(1, int(self._ttl)))
                await pipe.execute()

        await self._store.run(add, None)

    async def page(
        self, tenant: str, *, limit: int, after: Cursor | None = None
    ) -> tuple[list[Conversation], Cursor | None]:
        """Up to ``limit`` conversations below ``after`` (the newest if ``None``), and the next cursor."""
        ids = await self._store.run(lambda r: self._ids(r, tenant, limit, after), None)
        if ids is None:
            found = await self._scan(tenant)
        else:
            found = await self._read(tenant, ids)
        found.sort(key=lambda c: (_activity(c), c.id), reverse=True)
        if after is not None:
            found = [c for c in found if (_activity(c), c.id) < (after.at, after.id)]
        page = found[:limit]
        more = len(found) > limit
        return page, (Cursor(at=_activity(page[-1]), id=page[-1].id) if more and page else None)

    async def _ids(self, r: redis.asyncio.Redis, tenant: str, limit: int, after: Cursor | None) -> list[str]:
        key = subjects.conversation_index_key(tenant)
        marker = subjects.conversation_index_marker(tenant)
        if not await r.exists(marker):
            await self._rebuild(r, tenant)
        # Ties on the score are rare (microsecond times); a few extra cover them.
        found = await r.zrevrangebyscore(
            key, after.at if after is not None else "+inf", "-inf", start=0, num=limit + 8
        )
        return [member.decode() if isinstance(member, bytes) else str(member) for member in found]

    async def _rebuild(self, r: redis.asyncio.Redis, tenant: str) -> None:
        records = await self._scan(tenant)
        key = subjects.conversation_index_key(tenant)
        async with r.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if records:
                pipe.zadd(key, {c.id: _activity(c) for c in records})
                pipe.expire(key, max(1, int(self._ttl)))
            pipe.set(subjects.conversation_index_marker(tenant), b"1", ex=max(1, int(self._reconcile)))
            await pipe.execute()

    async def _scan(self, tenant: str) -> list[Conversation]:
        from gateway.turns import Conversation

        found = await self._mesh.state_everywhere(tenant, RECORD, Conversation)
        return [versioned.value for versioned in found.values()]

    async def _read(self, tenant: str, ids: list[str]) -> list[Conversation]:
        from gateway.turns import Conversation

        got = await asyncio.gather(*(self._mesh.state(tenant, cid).get(RECORD, Conversation) for cid in ids))
        gone = [cid for cid, found in zip(ids, got, strict=True) if found is None]
        if gone:  # expired records: drop them from the index too
            key = subjects.conversation_index_key(tenant)
            await self._store.run(lambda r: r.zrem(key, *gone), None)
        return [found.value for found in got if found is not None]


def _activity(conversation: Conversation) -> float:
    return conversation.updated_at or conversation.created_at
