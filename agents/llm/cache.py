"""The response cache: in-process LRU with TTL first, then Redis with TTL.

A key is a hash of everything that decides a model's answer (model, messages,
passages, sampling parameters, output schema), inside a namespace: the
conversation by default, so one chat never receives another's cached answer,
or the whole tenant for deterministic work that opts in. The tenant is always
part of the key: nothing is ever shared across tenants.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from opentelemetry import metrics

from agents.llm.messages import Completion
from agents.redisstore import RedisStore
from bus import subjects

__all__ = ["CacheStats", "LocalCache", "ResponseCache", "digest"]


def digest(parts: object) -> str:
    """A stable hash of ``parts`` (anything msgspec can encode)."""
    return hashlib.sha256(msgspec.json.encode(parts, order="deterministic")).hexdigest()[:40]


class LocalCache:
    """A bounded LRU of values that expire after ``ttl`` seconds."""

    def __init__(self, *, max_entries: int, ttl: float) -> None:
        self._max = max_entries
        self._ttl = ttl
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        self._items[key] = (time.monotonic() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def read_through(self, key: str, redis: RedisStore) -> tuple[bytes | None, str]:
        """The value of ``key`` and its layer: this process's (``local``), else Redis's (``redis``),
        then kept here too; ``None`` where neither has it (or Redis is away)."""
        data = self.get(key)
        if data is not None:
            return data, "local"
        stored: bytes | str | None = await redis.run(lambda r: r.get(key), None)
        data = stored.encode() if isinstance(stored, str) else stored
        if data is not None:
            self.put(key, data)
        return data, "redis"

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class CacheStats:
    """Hits per layer and misses since the process started."""

    local_hits: int = 0
    redis_hits: int = 0
    misses: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.local_hits + self.redis_hits + self.misses
        return 0.0 if total == 0 else (self.local_hits + self.redis_hits) / total


class ResponseCache:
    """Two-layer cache of completions."""

    def __init__(
        self,
        redis: RedisStore,
        *,
        ttl: float,
        max_entries: int,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._redis = redis
        self._ttl = ttl
        self._local = LocalCache(max_entries=max_entries, ttl=ttl)
        self._decoder = msgspec.json.Decoder(Completion)
        self.stats = CacheStats()
        meter = metrics.get_meter("hivewire.llm", meter_provider=meter_provider)
        self._hits = meter.create_counter("hivewire.llm.cache.hits", description="Cached answers served")
        self._misses = meter.create_counter(
            "hivewire.llm.cache.misses", description="Answers not in the cache"
        )
        meter.create_observable_gauge(
            "hivewire.llm.cache.hit_ratio",
            callbacks=[lambda _: [metrics.Observation(self.stats.hit_ratio)]],
            description="Share of cache look-ups that were hits, since the process started",
        )

    async def get(self, tenant: str, namespace: str, key: str) -> tuple[Completion, str] | None:
        """The cached completion and the layer it came from (``local`` or ``redis``), or ``None``."""
        full = subjects.llm_cache_key(tenant, namespace, key)
        data, layer = await self._local.read_through(full, self._redis)
        if data is None:
            self.stats.misses += 1
            self._misses.add(1, {"tenant": tenant})
            return None
        if layer == "local":
            self.stats.local_hits += 1
        else:
            self.stats.redis_hits += 1
        self._hits.add(1, {"tenant": tenant, "layer": layer})
        return self._decoder.decode(data), layer

    async def put(self, tenant: str, namespace: str, key: str, completion: Completion) -> None:
        """Store ``completion`` in both layers."""
        full = subjects.llm_cache_key(tenant, namespace, key)
        data = msgspec.json.encode(completion)
        self._local.put(full, data)
        await self._redis.run(lambda r: r.set(full, data, ex=max(1, int(self._ttl))), None)
