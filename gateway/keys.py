"""API keys: each maps to one tenant; only the key's SHA-256 digest is stored.

Keys live in the ``hw_keys`` key-value bucket, so every gateway replica sees a
key the moment it is created or revoked (a replica trusts a verified key for
``cache_ttl`` seconds at most). A key is 256 random bits, so a plain SHA-256
digest is enough: there is no password to guess, and a fast hash keeps
verification off the request's critical path.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from agents.infrastructure import ensure_bucket, entries
from bus import subjects
from bus.client import Bus
from bus.codec import Codec

__all__ = ["SCOPES", "ApiKeys", "KeyRecord", "digest"]

_PREFIX = "hw_"
# What a key may do: everything of its tenant, or only hold conversations (a key that an
# embedded chat widget puts in a public page).
SCOPES = ("full", "widget")


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What is stored about a key (never the key itself)."""

    tenant: str
    name: str = ""
    created_at: float = 0.0
    scope: str = "full"


def digest(key: str) -> str:
    """The stored identity of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Creates, verifies, lists and revokes API keys."""

    def __init__(self, kv: KeyValue, codec: Codec, *, cache_ttl: float = 30.0) -> None:
        self._kv = kv
        self._codec = codec
        self._cache_ttl = cache_ttl
        self._verified: dict[str, tuple[KeyRecord, float]] = {}

    @classmethod
    async def open(cls, bus: Bus, *, cache_ttl: float = 30.0) -> ApiKeys:
        """The keys of the mesh ``bus`` connects to (the bucket is created if missing)."""
        kv = await ensure_bucket(bus.jetstream(), subjects.KEYS_BUCKET, ttl=None)
        return cls(kv, bus.codec, cache_ttl=cache_ttl)

    async def create(self, tenant: str, *, name: str = "", scope: str = "full") -> tuple[str, KeyRecord]:
        """A new key for ``tenant``: returns the key (shown once, never stored) and its record.

        Raises:
            ValueError: ``scope`` is not one of :data:`SCOPES`.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope is one of {', '.join(SCOPES)}, not {scope!r}")
        record = KeyRecord(
            tenant=subjects.token("tenant", tenant), name=name, created_at=time.time(), scope=scope
        )
        key = _PREFIX + secrets.token_urlsafe(32)
        await self._kv.create(subjects.api_key_key(digest(key)), self._codec.encode(record))
        return key, record

    async def verify(self, key: str) -> str | None:
        """The tenant ``key`` belongs to, or ``None`` for an unknown or revoked key."""
        record = await self.identify(key)
        return None if record is None else record.tenant

    async def identify(self, key: str) -> KeyRecord | None:
        """``key``'s record (tenant and scope), or ``None`` for an unknown or revoked key."""
        if not key.startswith(_PREFIX) or len(key) > 128:
            return None
        ident = digest(key)
        now = time.monotonic()
        cached = self._verified.get(ident)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            entry = await self._kv.get(subjects.api_key_key(ident))
        except nats.js.errors.KeyNotFoundError:
            self._verified.pop(ident, None)
            return None
        if entry.value is None:
            return None
        record = self._codec.decode(entry.value, KeyRecord)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[ident] = (record, now + self._cache_ttl)
        return record

    async def list(self, tenant: str | None = None) -> list[tuple[str, KeyRecord]]:
        """Every key's id (a prefix of its digest) and record, optionally of one tenant only."""
        found = []
        for entry in await entries(self._kv):
            if entry.value is None:
                continue
            record = self._codec.decode(entry.value, KeyRecord)
            if tenant is None or record.tenant == tenant:
                found.append((entry.key[:12], record))
        return sorted(found, key=lambda item: item[1].created_at)

    async def revoke(self, key_id: str) -> int:
        """Revoke the keys whose id (a digest prefix, 8+ characters) or key is ``key_id``; the count."""
        if key_id.startswith(_PREFIX):
            key_id = digest(key_id)
        if len(key_id) < 8:
            raise ValueError("give at least 8 characters of a key id")
        revoked = 0
        for entry in await entries(self._kv, values=False):
            if entry.key.startswith(key_id):
                await self._kv.purge(entry.key)
                revoked += 1
        return revoked
