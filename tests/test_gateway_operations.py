"""The gateway in operation: one trace per turn, /metrics, token budgets, and limits without Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from agents.redisstore import RedisStore
from bus import EmbeddedNats, new_id
from bus.telemetry import Telemetry
from gateway.limits import RateLimiter, TokenBudget
from gateway.settings import GatewaySettings, TenantLimits
from gateway.usage import UsageMeter
from tests.gateway_server import api_keys, free_port, serve_gateway
from tests.openai_server import OpenAIServer
from tests.processes import agent_process
from tests.redis_server import RedisServer

RUN = new_id()[:8]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
async def traced(
    nats_server: EmbeddedNats, redis_server: RedisServer, openai_server: OpenAIServer
) -> AsyncIterator[tuple[str, str, InMemorySpanExporter, Telemetry]]:
    """A gateway whose spans are kept in memory, with the assistant agent behind it."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    telemetry = Telemetry(
        service_name="test-gateway",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        registry=registry,
    )
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent="assistant",
        gateway_skill="chat",
        gateway_tenant_limits={f"thrifty{RUN}": TenantLimits(daily_tokens=5)},
    )
    env = {"HIVEWIRE_REDIS_URL": redis_server.url, "HIVEWIRE_LLM_BASE_URL": openai_server.url}
    async with (
        agent_process(nats_server.url, "tests.zoo:assistant", **env),
        serve_gateway(settings, telemetry) as url,
    ):
        yield url, (await api_keys(nats_server.url, "acme"))["acme"], exporter, telemetry
    meter_provider.shutdown()
    tracer_provider.shutdown()


async def test_a_turn_is_one_trace_from_the_http_request_to_the_bus(
    traced: tuple[str, str, InMemorySpanExporter, Telemetry],
) -> None:
    url, key, exporter, _ = traced
    headers = {"Authorization": f"Bearer {key}", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        exporter.clear()
        turn = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "hello"})
    assert turn.status_code == 200
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert server.name == "POST /v1/conversations/{cid}/messages"
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace continues
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    request = next(s for s in spans if s.name == "request hw.acme.agent.assistant.chat")
    assert request.context.trace_id == server.context.trace_id
    assert request.parent is not None
    assert request.parent.span_id == server.context.span_id


async def test_metrics_are_served_in_the_prometheus_format(
    traced: tuple[str, str, InMemorySpanExporter, Telemetry],
) -> None:
    url, _, _, _ = traced
    async with httpx.AsyncClient(base_url=url) as client:
        await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_server_request_duration" in metrics.text


async def test_a_tenant_over_its_daily_token_budget_gets_429(
    traced: tuple[str, str, InMemorySpanExporter, Telemetry],
    nats_server: EmbeddedNats,
    openai_server: OpenAIServer,
) -> None:
    url, _, _, _ = traced
    # One turn spends the budget (5 tokens), whatever an earlier test left the model answering.
    openai_server.reply("big", "An answer of well over five tokens, to spend the budget in one turn.")
    key = (await api_keys(nats_server.url, f"thrifty{RUN}"))[f"thrifty{RUN}"]
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        first = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "spend some tokens"})
        second = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "and more"})
        usage = (await client.get("/v1/usage")).json()
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["type"].endswith("/token-budget-exhausted")
    assert int(second.headers["Retry-After"]) > 0
    assert usage["tokensToday"] >= 5
    assert usage["dailyTokenBudget"] == 5


async def test_without_redis_each_replica_still_limits_and_counts() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)  # nobody listens there
    usage = UsageMeter(store, TokenBudget(store))
    limiter = RateLimiter(store, usage)
    decisions = [await limiter.check("acme", rate=1.0, burst=3) for _ in range(4)]
    counted = await usage.read("acme", 0)
    await usage.close()
    await store.close()
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].headers()["Retry-After"] == "1"
    assert counted.requests == 3
    assert counted.shared is False


async def test_the_redis_rate_limit_is_shared_by_replicas(redis_server: RedisServer) -> None:
    tenant = f"shared{RUN}"
    first, second = RedisStore(redis_server.url), RedisStore(redis_server.url)
    meters = [UsageMeter(store, TokenBudget(store)) for store in (first, second)]
    replicas = [RateLimiter(store, meter) for store, meter in zip((first, second), meters, strict=True)]
    decisions = [await replicas[i % 2].check(tenant, rate=1.0, burst=4) for i in range(6)]
    for meter, store in zip(meters, (first, second), strict=True):
        await meter.close()  # its last counts written before its connections close
        await store.close()
    assert [d.allowed for d in decisions] == [True, True, True, True, False, False]
    assert [d.remaining for d in decisions[:4]] == [3, 2, 1, 0]


async def test_requests_arriving_together_are_decided_in_one_round_trip_as_if_one_by_one(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url)
    usage = UsageMeter(store, TokenBudget(store))
    limiter = RateLimiter(store, usage)
    decisions = await asyncio.gather(*(limiter.check(f"batch{RUN}", rate=1.0, burst=4) for _ in range(6)))
    await usage.close()
    await store.close()
    assert [d.allowed for d in decisions] == [True, True, True, True, False, False]
    assert [d.remaining for d in decisions] == [3, 2, 1, 0, 0, 0]
    assert decisions[-1].headers()["Retry-After"] == "1"
