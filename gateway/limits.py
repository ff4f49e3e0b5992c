"""Per-tenant limits: a request rate (GCRA) and a daily LLM token budget, kept in Redis.

Redis makes both atomic and shared by every gateway replica: the rate limiter
is one Lua script (generic cell rate algorithm: one key per tenant holding its
theoretical arrival time, read against Redis's own clock), and the token
budget is one counter per tenant and UTC day. When Redis is absent or down,
each replica keeps the same state in process: the service stays protected,
but a tenant then gets its limit from every replica (documented in
``docs/gateway.md``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio

from agents import usage as agents_usage
from agents.llm.messages import Usage as LLMUsage
from agents.redisstore import RedisStore
from bus import subjects
from bus.a2a import Message

__all__ = [
    "Decision",
    "RateLimiter",
    "TokenBudget",
    "Usage",
    "UsageHistory",
    "UsageHour",
    "UsageMeter",
    "spend_in",
    "spend_of",
]

# KEYS[1]: the tenant's limiter key, KEYS[2]: its usage hash (requests are counted when let in),
# KEYS[3]: its token count for today (read here, so a request costs no second round trip),
# KEYS[4]: its usage hash for this hour (the series the console charts).
# ARGV: emission interval and burst tolerance in microseconds, how many requests ask at once,
# and how many seconds an hour's counts are kept.
# Returns {requests let in (the first ones, in order), µs until the first refused one could
# go, µs until the bucket is full again, tokens used today}.
_GCRA = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local asking = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = 0
while granted < asking and tat + interval - tolerance <= now do
  tat = tat + interval
  granted = granted + 1
end
if granted > 0 then
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1)
  redis.call('HINCRBY', KEYS[2], 'requests', granted)
  redis.call('HINCRBY', KEYS[4], 'requests', granted)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
local tokens = tonumber(redis.call('GET', KEYS[3]) or 0)
return {granted, math.max(0, tat + interval - tolerance - now), tat - now, tokens}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may go ahead, with what the rate-limit headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the full burst is available again
    retry_after: float  # seconds to wait when not allowed
    tokens_today: int | None = None  # model tokens the tenant used today, when read with the decision

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter:
    """Requests per second per tenant, with a burst, shared through Redis.

    The requests of one tenant that arrive in the same turn of the event loop
    are decided together, in one script call: under load a replica makes one
    Redis round trip per batch instead of one per request, and the decisions
    are the same as one by one (the first ones in go first).
    """

    def __init__(self, store: RedisStore, usage: UsageMeter) -> None:
        self._store = store
        self._usage = usage
        self._script: Any = None
        self._local: dict[str, float] = {}  # tenant -> theoretical arrival time (monotonic seconds)
        self._waiting: dict[tuple[str, float, int], list[asyncio.Future[Decision]]] = {}
        self._deciding: set[asyncio.Task[None]] = set()

    async def check(self, tenant: str, *, rate: float, burst: int) -> Decision:
        """Count one request of ``tenant`` and decide whether it may go ahead."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._decide_waiting)
        self._waiting.setdefault((tenant, rate, burst), []).append(future)
        return await future

    def _decide_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for (tenant, rate, burst), futures in waiting.items():
            task = asyncio.create_task(self._decide(tenant, rate, burst, futures))
            self._deciding.add(task)
            task.add_done_callback(self._deciding.discard)

    async def _decide(
        self, tenant: str, rate: float, burst: int, futures: list[asyncio.Future[Decision]]
    ) -> None:
        interval = 1.0 / rate
        tolerance = interval * burst
        try:
            found = await self._store.run(
                lambda r: self._redis(r, tenant, interval, tolerance, len(futures)), None
            )
            if found is None:
                decisions = [self._in_process(tenant, burst, interval, tolerance) for _ in futures]
            else:
                decisions = _batch(found, len(futures), burst, interval, tolerance)
        except Exception as exc:  # noqa: BLE001 - every waiting request learns of the failure
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, decision in zip(futures, decisions, strict=True):
            if not future.done():
                future.set_result(decision)

    async def _redis(
        self, r: redis.asyncio.Redis, tenant: str, interval: float, tolerance: float, asking: int
    ) -> list[int]:
        if self._script is None:
            self._script = r.register_script(_GCRA)
        keys = [
            subjects.rate_limit_key(tenant),
            subjects.usage_key(tenant),
            subjects.token_budget_key(tenant, _today()),
            subjects.usage_hour_key(tenant, _hour()),
        ]
        args = [round(interval * 1e6), round(tolerance * 1e6), asking, self._usage.keep_seconds]
        result: list[int] = await self._script(keys=keys, args=args)
        return result

    def _in_process(self, tenant: str, burst: int, interval: float, tolerance: float) -> Decision:
        now = time.monotonic()
        tat = max(self._local.get(tenant, now), now)
        new_tat = tat + interval
        allow_at = new_tat - tolerance
        if allow_at > now:
            return Decision(False, burst, 0, tat - now, allow_at - now)
        self._local[tenant] = new_tat
        if len(self._local) > 100_000:
            self._local = {t: v for t, v in self._local.items() if v > now}
        self._usage.count_locally(tenant)
        full = new_tat - now
        return Decision(True, burst, max(0, int((tolerance - full) / interval)), full, 0.0)


def _batch(found: list[int], asking: int, burst: int, interval: float, tolerance: float) -> list[Decision]:
    """The decisions of ``asking`` requests from the script's answer, in arrival order."""
    granted, retry, full, tokens = int(found[0]), found[1] / 1e6, found[2] / 1e6, int(found[3])
    decisions = []
    for i in range(asking):
        if i < granted:
            # The i-th request let in saw the bucket as full as it was after it.
            mine = full - (granted - 1 - i) * interval
            remaining = max(0, int((tolerance - mine) / interval))
            decisions.append(Decision(True, burst, remaining, mine, 0.0, tokens))
        else:
            decisions.append(Decision(False, burst, 0, full, retry, tokens))
    return decisions


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d")


def _hour(at: dt.datetime | None = None) -> str:
    return (at or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H")


def _until_midnight() -> float:
    now = dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


class TokenBudget:
    """LLM tokens per tenant per UTC day."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._local: dict[tuple[str, str], int] = {}

    async def used(self, tenant: str) -> int:
        """Tokens ``tenant`` used today."""
        day = _today()
        key = subjects.token_budget_key(tenant, day)
        found = await self._store.run(lambda r: r.get(key), None)
        return int(found) if found is not None else self._local.get((tenant, day), 0)

    async def exhausted(self, tenant: str, budget: int, *, used: int | None = None) -> float | None:
        """Seconds until the budget renews when ``tenant`` has used it up today, else ``None``.

        ``used``: today's count if already known (the rate limiter reads it too).
        """
        if budget <= 0:
            return None
        if used is None:
            used = await self.used(tenant)
        return _until_midnight() if used >= budget else None

    async def spend(self, tenant: str, tokens: int) -> None:
        """Add ``tokens`` to today's count."""
        if tokens <= 0:
            return
        day = _today()
        key = subjects.token_budget_key(tenant, day)

        async def add(r: redis.asyncio.Redis) -> bool:
            async with r.pipeline(transaction=True) as pipe:
                pipe.incrby(key, tokens)
                pipe.expire(key, 2 * 86400)
                await pipe.execute()
            return True

        if not await self._store.run(add, False):
            self._local[(tenant, day)] = self._local.get((tenant, day), 0) + tokens


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
        hour = _hour()
        if (tenant, hour) not in self._local_hours and len(self._local_hours) > 10_000:
            oldest = _hour(dt.datetime.now(dt.UTC) - dt.timedelta(hours=self._keep_hours))
            self._local_hours = {k: v for k, v in self._local_hours.items() if k[1] > oldest}
        return self._local_hours.setdefault((tenant, hour), {})

    async def record(self, tenant: str, *, spend: tuple[int, int, float]) -> None:
        """Add the model spend of one request: (input tokens, output tokens, cost)."""
        if not any(spend):
            return
        fields = {"inputTokens": spend[0], "outputTokens": spend[1]}
        total, hourly = subjects.usage_key(tenant), subjects.usage_hour_key(tenant, _hour())

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
        keys = [subjects.usage_hour_key(tenant, _hour(start)) for start in starts]

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
            else [self._local_hours.get((tenant, _hour(start)), {}) for start in starts]
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
