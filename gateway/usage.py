"""What each tenant used: requests, model tokens and cost, in total and hour by hour (Redis hashes,
in process without Redis), and the spend a reply reports."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio

from agents import usage as agents_usage
from agents.llm.messages import Usage as LLMUsage
from agents.redisstore import RedisStore
from bus import subjects
from bus.a2a import Message

if TYPE_CHECKING:
    from gateway.limits import TokenBudget

__all__ = ["Usage", "UsageHistory", "UsageHour", "UsageMeter", "spend_in", "spend_of", "utc_hour"]


def utc_hour(at: dt.datetime | None = None) -> str:
    """The UTC hour ``at`` (default: now) falls in, as the keys of the hourly series name it."""
    return (at or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H")


class Usage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A tenant's usage so far, as the API reports it."""

    tenant: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    tokens_today: int = 0
    daily_token_budget: int = 0
    shared: bool = True  # False: Redis is down and these counts are this replica's only


class UsageHour(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A tenant's usage in one UTC hour (``hour``: its start, ISO 8601)."""

    hour: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class UsageHistory(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A tenant's usage hour by hour, oldest first, up to the current hour."""

    tenant: str
    hours: list[UsageHour]
    shared: bool = True  # False: Redis is down and these counts are this replica's only


class UsageMeter:
    """Counts requests, tokens and cost per tenant, in total and per UTC hour (Redis hashes; in
    process without Redis)."""

    def __init__(self, store: RedisStore, budget: TokenBudget, *, keep_hours: int = 24 * 8) -> None:
        """Args:
        keep_hours: how many hours of the hourly series are kept.
        """
        self._store = store
        self._budget = budget
        self.keep_seconds = keep_hours * 3600
        self._keep_hours = keep_hours
        self._local: dict[str, dict[str, float]] = {}
        self._local_hours: dict[tuple[str, str], dict[str, float]] = {}

    def count_locally(self, tenant: str) -> None:
        """Count a request in process (Redis down: the rate limiter could not count it there)."""
        for local in (self._local.setdefault(tenant, {}), self._hour_locally(tenant)):
            local["requests"] = local.get("requests", 0) + 1

    def _hour_locally(self, tenant: str) -> dict[str, float]:
        hour = utc_hour()
        if (tenant, hour) not in self._local_hours and len(self._local_hours) > 10_000:
            oldest = utc_hour(dt.datetime.now(dt.UTC) - dt.timedelta(hours=self._keep_hours))
            self._local_hours = {k: v for k, v in self._local_hours.items() if k[1] > oldest}
        return self._local_hours.setdefault((tenant, hour), {})

    async def record(self, tenant: str, *, spend: tuple[int, int, float]) -> None:
        """Add the model spend of one request: (input tokens, output tokens, cost)."""
        if not any(spend):
            return
        fields = {"inputTokens": spend[0], "outputTokens": spend[1]}
        total, hourly = subjects.usage_key(tenant), subjects.usage_hour_key(tenant, utc_hour())

        async def add(r: redis.asyncio.Redis) -> bool:
            async with r.pipeline(transaction=False) as pipe:
                for key in (total, hourly):
                    for name, value in fields.items():
                        if value:
                            pipe.hincrby(key, name, value)
                    if spend[2]:
                        pipe.hincrbyfloat(key, "cost", spend[2])
                pipe.expire(hourly, self.keep_seconds)
                await pipe.execute()
            return True

        if not await self._store.run(add, False):
            for local in (self._local.setdefault(tenant, {}), self._hour_locally(tenant)):
                for name, value in {**fields, "cost": spend[2]}.items():
                    local[name] = local.get(name, 0) + value
        await self._budget.spend(tenant, spend[0] + spend[1])

    async def read(self, tenant: str, daily_budget: int) -> Usage:
        """``tenant``'s counters."""
        key = subjects.usage_key(tenant)
        found = await self._store.run(lambda r: r.hgetall(key), None)
        shared = found is not None
        values: dict[str, float] = (
            {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in found.items()}
            if found is not None
            else self._local.get(tenant, {})
        )
        return Usage(
            tenant=tenant,
            requests=int(values.get("requests", 0)),
            input_tokens=int(values.get("inputTokens", 0)),
            output_tokens=int(values.get("outputTokens", 0)),
            cost=round(values.get("cost", 0.0), 6),
            tokens_today=await self._budget.used(tenant),
            daily_token_budget=daily_budget,
            shared=shared,
        )

    async def history(self, tenant: str, hours: int) -> UsageHistory:
        """``tenant``'s last ``hours`` UTC hours (at most the hours kept), oldest first."""
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        starts = [now - dt.timedelta(hours=n) for n in range(min(hours, self._keep_hours) - 1, -1, -1)]
        keys = [subjects.usage_hour_key(tenant, utc_hour(start)) for start in starts]

        async def read(r: redis.asyncio.Redis) -> list[dict[Any, Any]]:
            async with r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                found: list[dict[Any, Any]] = await pipe.execute()
            return found

        found = await self._store.run(read, None)
        rows: list[dict[str, float]] = (
            [{_text(k): float(v) for k, v in row.items()} for row in found]
            if found is not None
            else [self._local_hours.get((tenant, utc_hour(start)), {}) for start in starts]
        )
        return UsageHistory(
            tenant=tenant,
            hours=[
                UsageHour(
                    hour=start.isoformat().replace("+00:00", "Z"),
                    requests=int(row.get("requests", 0)),
                    input_tokens=int(row.get("inputTokens", 0)),
                    output_tokens=int(row.get("outputTokens", 0)),
                    cost=round(row.get("cost", 0.0), 6),
                )
                for start, row in zip(starts, rows, strict=True)
            ],
            shared=found is not None,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def spend_of(message: Message) -> tuple[int, int, float]:
    """(input tokens, output tokens, cost) a reply reports in its metadata, summed over models."""
    return _total(agents_usage.spend_of(message))


def spend_in(usage: object) -> tuple[int, int, float]:
    """(input tokens, output tokens, cost) of a usage record ``{model: {inputTokens, ...}}``."""
    return _total(agents_usage.spend_in(usage))


def _total(spend: dict[str, LLMUsage]) -> tuple[int, int, float]:
    total = sum(spend.values(), LLMUsage())
    return total.input_tokens, total.output_tokens, total.cost
