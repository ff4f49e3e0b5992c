"""The tool-result cache: what a tool returned, keyed by the tool, its input and the data it read.

In-process LRU first, then Redis, both with a time to live, always per tenant.
The key is a hash of the tool's name, its input in canonical form (decoded
and re-encoded with sorted keys, so the model's spacing or key order does not
matter) and a fingerprint of the data the tool reads: a file's content hash,
a knowledge base's passage ids. A changed source makes a new key, so a result
computed from the old data is never served again; it ages out.
"""

from __future__ import annotations

import msgspec
from opentelemetry import metrics

from agents.llm.cache import CacheStats, LocalCache, digest
from agents.redisstore import RedisStore
from bus import subjects

__all__ = ["ToolCache"]


class ToolCache:
    """Two-layer cache of tool results (encoded bytes), with hit and miss counts per tool."""

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
        self.stats = CacheStats()
        meter = metrics.get_meter("hivewire.tools", meter_provider=meter_provider)
        self._hits = meter.create_counter(
            "hivewire.tools.cache.hits", description="Tool results served from the cache"
        )
        self._misses = meter.create_counter(
            "hivewire.tools.cache.misses", description="Tool calls the cache could not answer"
        )
        meter.create_observable_gauge(
            "hivewire.tools.cache.hit_ratio",
            callbacks=[lambda _: [metrics.Observation(self.stats.hit_ratio)]],
            description="Share of tool-cache look-ups that were hits, since the process started",
        )

    @staticmethod
    def key(tool: str, arguments: object, data: str) -> str:
        """The key of ``tool`` called with ``arguments`` (anything msgspec encodes) over data ``data``."""
        return digest([tool, msgspec.to_builtins(arguments), data])

    async def get(self, tenant: str, tool: str, key: str) -> tuple[bytes, str] | None:
        """The cached result and the layer it came from (``local`` or ``redis``), or ``None``."""
        full = subjects.tool_cache_key(tenant, tool, key)
        data, layer = await self._local.read_through(full, self._redis)
        if data is None:
            self.stats.misses += 1
            self._misses.add(1, {"tenant": tenant, "gen_ai.tool.name": tool})
            return None
        if layer == "local":
            self.stats.local_hits += 1
        else:
            self.stats.redis_hits += 1
        self._hits.add(1, {"tenant": tenant, "gen_ai.tool.name": tool, "layer": layer})
        return data, layer

    async def put(self, tenant: str, tool: str, key: str, value: bytes) -> None:
        """Store ``value`` in both layers."""
        full = subjects.tool_cache_key(tenant, tool, key)
        self._local.put(full, value)
        await self._redis.run(lambda r: r.set(full, value, ex=max(1, int(self._ttl))), None)
