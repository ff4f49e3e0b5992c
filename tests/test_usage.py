"""Usage across a Redis outage: what tenants used meanwhile reaches the shared totals once Redis is
back, and a batch of counts written again after Redis took it without answering is counted once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agents.redisstore import RedisStore
from gateway.limits import RateLimiter, TokenBudget
from gateway.usage import Usage, UsageMeter
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to stop and restart"
)


@asynccontextmanager
async def replica(url: str) -> AsyncIterator[tuple[UsageMeter, RateLimiter]]:
    """A gateway replica's usage meter and rate limiter on Redis at ``url``, quick to notice it
    gone and back."""
    store = RedisStore(url, timeout=0.3, retry_interval=0.1)
    usage = UsageMeter(store, TokenBudget(store), retry_interval=0.1)
    try:
        yield usage, RateLimiter(store, usage)
    finally:
        await usage.close()
        await store.close()


async def written(usage: UsageMeter) -> None:
    async with asyncio.timeout(5):
        while usage.unsent:
            await asyncio.sleep(0.05)


def counts(usage: Usage) -> tuple[int, int, int, float, int]:
    return usage.requests, usage.input_tokens, usage.output_tokens, usage.cost, usage.tokens_today


async def test_what_a_tenant_used_during_an_outage_is_in_the_shared_totals_once_redis_is_back() -> None:
    with RedisServer(persist=True) as redis:
        async with replica(redis.url) as (usage, limiter), replica(redis.url) as (other, _):
            await limiter.check("acme", rate=100, burst=100)
            await usage.record("acme", spend=(10, 5, 0.25))
            await asyncio.to_thread(redis.stop)
            for _ in range(3):
                await limiter.check("acme", rate=100, burst=100)
                await usage.record("acme", spend=(100, 50, 1.5))
            # Meanwhile this replica answers from its own counts, and says so.
            alone = await usage.read("acme", 0)
            assert (counts(alone), alone.shared) == ((4, 310, 155, 4.75, 465), False)
            await asyncio.to_thread(redis.start)  # the same port and data
            await written(usage)  # nobody had to ask: the meter wrote them through
            shared = await other.read("acme", 0)
            assert (counts(shared), shared.shared) == ((4, 310, 155, 4.75, 465), True)
            hours = await other.history("acme", 1)
            assert (hours.hours[-1].requests, hours.hours[-1].input_tokens) == (4, 310)


async def test_a_batch_redis_took_without_answering_is_counted_once() -> None:
    with RedisServer() as redis:
        proxy = await TcpProxy(redis.port).start()
        try:
            async with (
                replica(f"redis://127.0.0.1:{proxy.port}/0") as (usage, _),
                replica(redis.url) as (other, _),
            ):
                await usage.record("acme", spend=(1, 1, 0.5))
                proxy.swallow_replies = True
                await usage.record("acme", spend=(20, 10, 2.0))  # Redis adds it; the answer is lost
                assert usage.unsent == 1  # for all it knows, Redis did not take it
                assert counts(await other.read("acme", 0)) == (0, 21, 11, 2.5, 32)
                proxy.swallow_replies = False
                await written(usage)  # written again: Redis knows the batch, adds nothing
                await usage.record("acme", spend=(300, 0, 0.0))
                assert counts(await other.read("acme", 0)) == (0, 321, 11, 2.5, 332)
        finally:
            await proxy.stop()
