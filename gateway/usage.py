"""What each tenant used: requests, model tokens and cost, in total and hour by hour (Redis hashes,
in process without Redis), and the spend a reply reports.

A replica counts in process first and writes its counts to Redis in batches:
the counts made while one batch is written go in the next, so a busy replica
makes one round trip for many requests. A batch that Redis does not take (it
is away, or stalls past ``HIVEWIRE_REDIS_TIMEOUT``) is written again every
``HIVEWIRE_REDIS_RETRY_INTERVAL`` seconds until it does, so what a tenant used
during an outage reaches the shared totals once Redis is back. The batches are
numbered, and Redis keeps the number of the last one it took from each
replica: a batch written again after Redis took it without answering (stopped
or stalled mid-command) adds nothing, so nothing is counted twice. What a
replica that dies during the outage had counted is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio

from agents import usage as agents_usage
from agents.llm.messages import Usage as LLMUsage
from agents.redisstore import RedisStore
from bus import subjects
from bus.a2a import Message

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.limits import TokenBudget

__all__ = ["Usage", "UsageHistory", "UsageHour", "UsageMeter", "spend_in", "spend_of", "utc_hour"]

log = logging.getLogger(__name__)

# Adds one batch of counts, once. KEYS[1]: the number of the last batch this replica wrote;
# then for each (tenant, hour): the tenant's totals, that hour's counts, that day's tokens (the
# token budget's counter). ARGV[1]: the batch's number, ARGV[2]: seconds that number is kept,
# ARGV[3]: seconds an hour's counts are kept, ARGV[4]: seconds a day's tokens are kept; then for
# each (tenant, hour): requests, input tokens, output tokens, cost.
_ADD_ONCE = """
if tonumber(ARGV[1]) <= tonumber(redis.call('GET', KEYS[1]) or 0) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 0, (#KEYS - 1) / 3 - 1 do
  local hour, day = KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local requests = tonumber(ARGV[5 + 4 * i])
  local input, output = tonumber(ARGV[6 + 4 * i]), tonumber(ARGV[7 + 4 * i])
  local cost = ARGV[8 + 4 * i]
  for _, key in ipairs({KEYS[2 + 3 * i], hour}) do
    if requests > 0 then redis.call('HINCRBY', key, 'requests', requests) end
    if input > 0 then redis.call('HINCRBY', key, 'inputTokens', input) end
    if output > 0 then redis.call('HINCRBY', key, 'outputTokens', output) end
    if tonumber(cost) > 0 then redis.call('HINCRBYFLOAT', key, 'cost', cost) end
  end
  redis.call('EXPIRE', hour, ARGV[3])
  if input + output > 0 then
    redis.call('INCRBY', day, input + output)
    redis.call('EXPIRE', day, ARGV[4])
  end
end
return 1
"""
_FIELDS = ("requests", "inputTokens", "outputTokens", "cost")
# Seconds Redis remembers a replica's last batch number (longer than any outage it covers), and
# a day's token count (the budget reads today's; yesterday's is kept for a late batch).
_WRITER_SECONDS = 7 * 86400
_DAY_SECONDS = 2 * 86400


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

    def __init__(
        self,
        store: RedisStore,
        budget: TokenBudget,
        *,
        keep_hours: int = 24 * 8,
        retry_interval: float = 2.0,
    ) -> None:
        """Args:
        keep_hours: how many hours of the hourly series are kept.
        retry_interval: seconds between attempts to write a batch while Redis is away.
        """
        self._store = store
        self._budget = budget
        self.keep_seconds = keep_hours * 3600
        self._keep_hours = keep_hours
        self._retry_interval = retry_interval
        # What this replica counted since it started: the answer while Redis is away.
        self._local: dict[str, dict[str, float]] = {}
        self._local_hours: dict[tuple[str, str], dict[str, float]] = {}
        # Counts Redis has not got yet, by (tenant, hour), and the numbered batch being written.
        self._writer = uuid.uuid4().hex
        self._unsent: dict[tuple[str, str], dict[str, float]] = {}
        self._batch: tuple[int, dict[tuple[str, str], dict[str, float]]] | None = None
        self._numbered = 0
        self._writing = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._closed = False
        self._script: Any = None

    @property
    def unsent(self) -> int:
        """(tenant, hour) pairs whose counts Redis has not got yet."""
        return len(self._unsent) + (len(self._batch[1]) if self._batch else 0)

    def count(
        self,
        tenant: str,
        *,
        requests: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
    ) -> None:
        """Count what ``tenant`` used: in process at once, in Redis with the next batch (written
        in the background; :meth:`flush` waits for it)."""
        values = dict(zip(_FIELDS, (requests, input_tokens, output_tokens, cost), strict=True))
        hour = utc_hour()
        counts = [self._local.setdefault(tenant, {}), self._hour_locally(tenant, hour)]
        if self._store.configured:
            counts.append(self._unsent.setdefault((tenant, hour), {}))
        for into in counts:
            for name, value in values.items():
                if value:
                    into[name] = into.get(name, 0) + value
        if input_tokens + output_tokens:
            self._budget.count(tenant, input_tokens + output_tokens, day=hour[:8])
        if self._closed:
            return  # counted in process; nothing writes to Redis any more
        if self._store.configured and (self._background is None or self._background.done()):
            self._background = asyncio.get_running_loop().create_task(self._write_all())

    async def flush(self) -> bool:
        """Write what was counted so far to Redis; True when nothing is left waiting for it."""
        async with self._writing:
            for _ in range(2):  # a batch left from an outage, then what was counted since
                if self._batch is None:
                    if not self._unsent:
                        return True
                    self._numbered += 1
                    self._batch, self._unsent = (self._numbered, self._unsent), {}
                if not await self._store.run(self._write(*self._batch), False):
                    return False
                self._batch = None
            return not self._unsent

    async def close(self) -> None:
        """Try once more to write what waits for Redis, then stop writing."""
        self._closed = True
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        if not await self.flush():
            log.warning("usage of %d tenant-hours never reached Redis", self.unsent)

    async def _write_all(self) -> None:
        """Write batches while there are counts to write, every ``retry_interval`` while Redis is away."""
        while self._unsent or self._batch is not None:
            if not await self.flush():
                await asyncio.sleep(self._retry_interval)

    def _write(
        self, number: int, batch: dict[tuple[str, str], dict[str, float]]
    ) -> Callable[[redis.asyncio.Redis], Awaitable[bool]]:
        keys = [subjects.usage_writer_key(self._writer)]
        args: list[str | int | float] = [number, _WRITER_SECONDS, self.keep_seconds, _DAY_SECONDS]
        for (tenant, hour), counts in batch.items():
            keys += [
                subjects.usage_key(tenant),
                subjects.usage_hour_key(tenant, hour),
                subjects.token_budget_key(tenant, hour[:8]),
            ]
            args += [
                int(counts.get("requests", 0)),
                int(counts.get("inputTokens", 0)),
                int(counts.get("outputTokens", 0)),
                f"{counts.get('cost', 0.0):.17g}",
            ]

        async def write(r: redis.asyncio.Redis) -> bool:
            if self._script is None:
                self._script = r.register_script(_ADD_ONCE)
            await self._script(keys=keys, args=args)
            return True

        return write

    def _hour_locally(self, tenant: str, hour: str) -> dict[str, float]:
        if (tenant, hour) not in self._local_hours and len(self._local_hours) > 10_000:
            oldest = utc_hour(dt.datetime.now(dt.UTC) - dt.timedelta(hours=self._keep_hours))
            self._local_hours = {k: v for k, v in self._local_hours.items() if k[1] > oldest}
        return self._local_hours.setdefault((tenant, hour), {})

    async def record(self, tenant: str, *, spend: tuple[int, int, float]) -> None:
        """Add the model spend of one request: (input tokens, output tokens, cost); in Redis on
        return when it is reachable (the next request's token budget sees it)."""
        if not any(spend):
            return
        self.count(tenant, input_tokens=spend[0], output_tokens=spend[1], cost=spend[2])
        await self.flush()

    async def read(self, tenant: str, daily_budget: int) -> Usage:
        """``tenant``'s counters."""
        await self.flush()
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
        await self.flush()

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
