"""Per-tenant limits: a request rate (GCRA) and a daily LLM token budget, kept in Redis.

Redis makes both atomic and shared by every gateway replica: the rate limiter
is one Lua script (generic cell rate algorithm: one key per tenant holding its
theoretical arrival time, read against Redis's own clock), and the token
budget is one counter per tenant and UTC day (which the usage meter adds to,
:mod:`gateway.usage`). When Redis is absent or down,
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

import redis.asyncio

from agents.redisstore import RedisStore
from bus import subjects
from gateway.usage import UsageMeter

__all__ = ["Decision", "RateLimiter", "TokenBudget"]

# KEYS[1]: the tenant's limiter key, KEYS[2]: its token count for today (read here, so a request
# costs no second round trip).
# ARGV: emission interval and burst tolerance in microseconds, how many requests ask at once.
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
end
local tokens = tonumber(redis.call('GET', KEYS[2]) or 0)
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
                self._usage.count(tenant, requests=int(found[0]))
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
        keys = [subjects.rate_limit_key(tenant), subjects.token_budget_key(tenant, _today())]
        args = [round(interval * 1e6), round(tolerance * 1e6), asking]
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
        self._usage.count(tenant, requests=1)
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

    def count(self, tenant: str, tokens: int, *, day: str | None = None) -> None:
        """Add ``tokens`` to this replica's own count for ``day`` (default today), which answers
        while Redis is away; the usage meter adds them to the shared count in Redis."""
        day = day or _today()
        if (tenant, day) not in self._local and len(self._local) > 10_000:
            self._local = {k: v for k, v in self._local.items() if k[1] >= _today()}
        self._local[(tenant, day)] = self._local.get((tenant, day), 0) + tokens
