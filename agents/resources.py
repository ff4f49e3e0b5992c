"""The clients a process shares across requests: Redis, the caches, the model client, history."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from opentelemetry import metrics, trace

from agents.history import ConversationHistory
from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient
from agents.llm.models import ModelOverride
from agents.llm.pricing import Price, PriceTable
from agents.redisstore import RedisStore
from agents.settings import AgentSettings
from agents.tools.cache import ToolCache

__all__ = ["Resources"]


@dataclass(frozen=True, slots=True)
class Resources:
    """Built once per process from its settings, closed when it stops."""

    redis: RedisStore
    cache: ResponseCache
    llm: LLMClient
    history: ConversationHistory
    tool_cache: ToolCache
    model_overrides: dict[str, ModelOverride]
    default_model: str | None
    # Where the process's own spans go (MCP calls...); OpenTelemetry's global provider when None.
    tracer_provider: trace.TracerProvider | None = None

    @classmethod
    def from_settings(
        cls,
        settings: AgentSettings,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> Resources:
        """Create the clients (no connection is made until first use)."""
        redis = RedisStore.from_settings(settings)
        cache = ResponseCache(
            redis,
            ttl=settings.cache_ttl,
            max_entries=settings.cache_max_entries,
            meter_provider=meter_provider,
        )
        llm = LLMClient(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            retry_delay=settings.llm_retry_delay,
            prices=PriceTable(msgspec.convert(settings.llm_prices, dict[str, Price])),
            cache=cache,
            tool_calls=settings.llm_tool_calls,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        history = ConversationHistory.from_settings(redis, settings, meter_provider=meter_provider)
        tool_cache = ToolCache(
            redis,
            ttl=settings.tool_cache_ttl,
            max_entries=settings.tool_cache_max_entries,
            meter_provider=meter_provider,
        )
        return cls(
            redis=redis,
            cache=cache,
            llm=llm,
            history=history,
            tool_cache=tool_cache,
            model_overrides=msgspec.convert(settings.llm_models, dict[str, ModelOverride]),
            default_model=settings.llm_model,
            tracer_provider=tracer_provider,
        )

    async def close(self) -> None:
        """Write what history waits for Redis (one last try); close the HTTP and Redis connection pools."""
        await self.history.close()
        await self.llm.close()
        await self.redis.close()
