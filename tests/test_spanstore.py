"""The span store: every process's finished spans on the bus, a turn's trace read back through the
gateway by its tenant only, as a tree rooted at the gateway's request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bus import EmbeddedNats, TelemetrySettings, new_id, start_telemetry
from gateway.settings import GatewaySettings
from tests.gateway_server import api_keys, serve_gateway
from tests.processes import agent_process

TENANTS = (f"spans{new_id()[:6]}", f"other{new_id()[:6]}")


@pytest.fixture(scope="module")
async def traced(nats_server: EmbeddedNats) -> AsyncIterator[tuple[str, dict[str, str]]]:
    settings = GatewaySettings(_env_file=None, nats_url=nats_server.url, gateway_key_cache=0)  # type: ignore[call-arg]
    telemetry = start_telemetry(
        "hivewire-gateway",
        settings=TelemetrySettings(
            otel_traces_exporter="hivewire", otel_metrics_exporter="none", otel_bsp_schedule_delay=50
        ),
        nats=settings,
    )
    env = {
        "OTEL_TRACES_EXPORTER": "hivewire",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_METRICS_EXPORTER": "none",
    }
    try:
        async with (
            agent_process(nats_server.url, "tests.zoo:echo", **env),
            serve_gateway(settings, telemetry) as url,
        ):
            yield url, await api_keys(nats_server.url, *TENANTS)
    finally:
        await telemetry.aclose()


async def _trace(client: httpx.AsyncClient, trace_id: str, services: int) -> dict[str, Any]:
    """The trace once spans of ``services`` processes are in (they arrive in batches)."""
    for _ in range(100):
        response = await client.get(f"/v1/traces/{trace_id}")
        if response.status_code == 200 and len({s["service"] for s in response.json()["spans"]}) >= services:
            found: dict[str, Any] = response.json()
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"trace {trace_id} incomplete: {response.text}")


async def test_a_calls_trace_is_read_back_whole_by_its_tenant_and_no_one_else(
    traced: tuple[str, dict[str, str]],
) -> None:
    url, keys = traced
    mine, theirs = ({"Authorization": f"Bearer {keys[t]}"} for t in TENANTS)
    async with httpx.AsyncClient(base_url=url, headers=mine, timeout=10) as client:
        # relay calls echo.add: gateway -> echo -> echo, one trace.
        reply = await client.post("/v1/agents/echo/skills/relay", json={"input": {"a": 1, "b": 2}})
        assert reply.status_code == 200, reply.text
        _, trace_id, _, _ = reply.headers["traceresponse"].split("-")
        trace = await _trace(client, trace_id, services=2)
        bad = await client.get("/v1/traces/not-a-trace")
    spans = trace["spans"]
    assert {span["tenant"] for span in spans} == {TENANTS[0]}
    assert {span["traceId"] for span in spans} == {trace_id}
    # One root, the gateway's server span; every other span's parent is in the trace.
    ids = {span["spanId"] for span in spans}
    roots = [span for span in spans if span["parentId"] not in ids]
    assert [(root["service"], root["kind"], root["name"]) for root in roots] == [
        ("hivewire-gateway", "server", "POST /v1/agents/{agent}/skills/{skill}")
    ]
    consumers = [span for span in spans if span["kind"] == "consumer"]
    assert {span["service"] for span in consumers} == {"hivewire-agent-echo"}
    assert len(consumers) == 2  # relay, then add
    assert all(span["end"] >= span["start"] > 0 for span in spans)
    assert bad.status_code == 400
    async with httpx.AsyncClient(base_url=url, headers=theirs, timeout=10) as other:
        hidden = await other.get(f"/v1/traces/{trace_id}")
    assert hidden.status_code == 404
    assert hidden.json()["type"].endswith("/trace-not-found")


async def test_a_streamed_turns_trace_runs_from_the_gateway_through_the_agent_that_ran_it(
    traced: tuple[str, dict[str, str]],
) -> None:
    url, keys = traced
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {keys[TENANTS[0]]}"}, timeout=10
    ) as client:
        cid = (await client.post("/v1/conversations", json={"agent": "echo", "skill": "count"})).json()["id"]
        message = {"messageId": new_id(), "role": "ROLE_USER", "parts": [{"data": 3}]}
        streamed = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"message": message},
            headers={"Accept": "text/event-stream"},
        )
        assert streamed.status_code == 200, streamed.text
        assert "TASK_STATE_COMPLETED" in streamed.text
        _, trace_id, _, _ = streamed.headers["traceresponse"].split("-")
        for _ in range(50):  # the server span ends with the stream, so it comes last
            spans = (await _trace(client, trace_id, services=2))["spans"]
            ids = {span["spanId"] for span in spans}
            roots = [span for span in spans if span["parentId"] not in ids]
            if len(roots) == 1:
                break
            await asyncio.sleep(0.1)
    assert [(root["service"], root["name"]) for root in roots] == [
        ("hivewire-gateway", "POST /v1/conversations/{cid}/messages")
    ]
    # The agent's replica took the turn from the queue and continued the request's trace.
    [consumer] = [span for span in spans if span["kind"] == "consumer"]
    assert consumer["service"] == "hivewire-agent-echo"
    assert consumer["name"] == f"process hw.{TENANTS[0]}.turn.echo.{streamed.headers['hivewire-task-id']}"
    # Its chunks went to the conversation from there.
    chunks = [span for span in spans if span["parentId"] == consumer["spanId"] and span["kind"] == "producer"]
    assert len(chunks) >= 3
