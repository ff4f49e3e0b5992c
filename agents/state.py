"""Shared conversation state: a blackboard in NATS key-value with optimistic concurrency.

Every agent working on one conversation sees the same entries, whichever
replica or process it runs in. A write can name the revision it read; if
anyone wrote since, it fails with :class:`~agents.errors.StateConflict` instead
of silently overwriting, and :meth:`ConversationState.update` retries a
read-modify-write until it applies cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue

from agents.errors import StateConflict
from agents.infrastructure import entries
from bus import subjects
from bus.codec import Codec
from bus.errors import MalformedPayload

__all__ = ["ConversationState", "Versioned", "every_conversation"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A value and the revision it was read at (pass it back to write conditionally)."""

    value: T
    revision: int


class ConversationState:
    """The shared state of one tenant's conversation."""

    def __init__(self, kv: KeyValue, codec: Codec, *, tenant: str, context_id: str) -> None:
        self._kv = kv
        self._codec = codec
        self.tenant = tenant
        self.context_id = context_id

    async def get(self, key: str, value_type: type[T]) -> Versioned[T] | None:
        """The current value of ``key`` and its revision, or ``None`` if it is not set.

        Raises:
            MalformedPayload: the stored value is not a ``value_type``.
        """
        try:
            entry = await self._kv.get(self._key(key))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        assert entry.revision is not None
        return Versioned(self._codec.decode(entry.value or b"", value_type), entry.revision)

    async def put(self, key: str, value: object, *, revision: int | None = None) -> int:
        """Write ``value``; return the new revision.

        Args:
            revision: ``None`` writes unconditionally; ``0`` only if ``key`` is
                not set yet; any other number only if that is still the latest.

        Raises:
            StateConflict: the condition did not hold.
        """
        full = self._key(key)
        data = self._codec.encode(value)
        try:
            if revision is None:
                return await self._kv.put(full, data)
            if revision == 0:
                return await self._kv.create(full, data)
            return await self._kv.update(full, data, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            raise StateConflict(key, revision) from None

    async def update(
        self,
        key: str,
        value_type: type[T],
        change: Callable[[T | None], T],
        *,
        attempts: int = 16,
    ) -> Versioned[T]:
        """Apply ``change`` to the current value (``None`` if unset) until no one else wrote between.

        Raises:
            StateConflict: still contended after ``attempts`` tries.
        """
        for _ in range(attempts):
            current = await self.get(key, value_type)
            new = change(None if current is None else current.value)
            try:
                revision = await self.put(key, new, revision=0 if current is None else current.revision)
            except StateConflict:
                continue
            return Versioned(new, revision)
        raise StateConflict(key, None)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (a no-op if it is not set)."""
        await self._kv.delete(self._key(key))

    async def keys(self) -> list[str]:
        """The keys set in this conversation."""
        prefix = subjects.state_prefix(self.tenant, self.context_id) + "."
        found = await entries(self._kv, prefix + ">", values=False)
        return sorted(entry.key[len(prefix) :] for entry in found)

    def _key(self, key: str) -> str:
        return subjects.state_key(self.tenant, self.context_id, key)


async def every_conversation(
    kv: KeyValue, codec: Codec, tenant: str, key: str, value_type: type[T]
) -> dict[str, Versioned[T]]:
    """The entry ``key`` of each of ``tenant``'s conversations that has one, by conversation id.

    The server filters by key, so this reads only those entries (one per
    conversation, the bucket keeps no history). Entries that do not decode as
    ``value_type`` are skipped.
    """
    found: dict[str, Versioned[T]] = {}
    for entry in await entries(kv, subjects.state_key_every_context(tenant, key)):
        assert entry.revision is not None
        try:
            value = codec.decode(entry.value or b"", value_type)
        except MalformedPayload:
            continue
        found[entry.key.split(".")[1]] = Versioned(value, entry.revision)
    return found
