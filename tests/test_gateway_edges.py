"""The gateway's HTTP edges: errors answered on a kept-alive connection, hostile input a 4xx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bus import EmbeddedNats, new_id
from bus.telemetry import Telemetry
from gateway import problems
from gateway.settings import GatewaySettings, TenantLimits
from tests.gateway_server import api_keys, local_address, serve_app, serve_gateway
from tests.processes import agent_process
from tests.redis_server import RedisServer

RUN = new_id()[:8]


class Edge:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A client with one connection, kept alive from request to request."""
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=20,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            **kwargs,
        )


@pytest.fixture(scope="module")
async def edge(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Edge]:
    tenant = f"edge{RUN}"
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent="echo",
        gateway_skill="shout",
        gateway_timeout=2.0,
        gateway_tenant_limits={tenant: TenantLimits(rate=10_000, burst=10_000)},
    )
    registry = CollectorRegistry()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    telemetry = Telemetry(service_name="test-gateway", meter_provider=meter_provider, registry=registry)
    async with agent_process(nats_server.url, "tests.zoo:echo"), serve_gateway(settings, telemetry) as url:
        yield Edge(url, (await api_keys(nats_server.url, tenant))[tenant])
    meter_provider.shutdown()


def _problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + kind), body
    return body


def _rpc_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# Errors are ordinary responses: the connection stays usable, nothing is logged, metrics see the status.

ERRORS = [
    ("POST", "/v1/agents/ec.ho/skills/shout", {"json": {"input": "hi"}}, 400, "invalid-name"),
    ("GET", "/v1/tasks/no-such-task", {}, 404, "task-not-found"),
    ("POST", "/v1/agents/echo/skills/add", {"json": {"input": "not numbers"}}, 422, "invalid-input"),
    ("POST", "/v1/agents/nobody/skills/shout", {"json": {"input": "hi"}}, 404, "agent-not-found"),
    ("DELETE", "/v1/usage", {}, 405, "http-405"),
]


async def test_errors_are_answered_on_the_kept_alive_connection_and_not_logged(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with edge.client() as client:
        first = await client.get("/v1/usage")
        where = local_address(first)
        for i in range(50):
            method, path, kwargs, status, kind = ERRORS[i % len(ERRORS)]
            response = await client.request(method, path, **kwargs)
            _problem(response, status, kind)
            assert local_address(response) == where, f"request {i} came on a new connection"
            assert "close" not in response.headers.get("connection", "")
        ok = await client.post("/v1/agents/echo/skills/shout", json={"input": "still here"})
        assert ok.json()["output"] == "STILL HERE"
        assert local_address(ok) == where
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_metrics_record_the_status_a_client_got(edge: Edge) -> None:
    async with edge.client() as client:
        _problem(await client.get("/v1/tasks/no-such-task"), 404, "task-not-found")
        metrics = (await client.get("/metrics")).text
    counts = [line for line in metrics.splitlines() if line.startswith("http_server_request_duration")]
    task_reads = [line for line in counts if 'http_route="/v1/tasks/{task_id}"' in line]
    assert any('http_response_status_code="404"' in line for line in task_reads), task_reads
    assert not any('http_response_status_code="500"' in line for line in counts), counts
    # Second-scale buckets for a duration in seconds (not the SDK's millisecond ones).
    bounds = [line.split('le="')[1].split('"')[0] for line in task_reads if "_bucket{" in line]
    assert bounds[:3] == ["0.005", "0.01", "0.025"]
    assert "10.0" in bounds
    assert "75.0" not in bounds


async def test_an_unexpected_error_is_a_500_problem_logged_once_on_a_kept_alive_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a route: the client gets a problem document and its connection stays usable."""

    async def bug(request: Request) -> PlainTextResponse:
        raise RuntimeError("a bug")

    async def fine(request: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    app = Starlette(
        routes=[Route("/bug", bug), Route("/fine", fine)],
        middleware=[Middleware(problems.LastResort)],
        exception_handlers=problems.EXCEPTION_HANDLERS,
    )
    caplog.set_level(logging.INFO)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, limits=limits) as client:
        failed = [await client.get("/bug") for _ in range(3)]
        fine_response = await client.get("/fine")
        assert {local_address(r) for r in [*failed, fine_response]} == {local_address(fine_response)}
    for response in failed:
        _problem(response, 500, "internal")
    assert fine_response.text == "fine"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.exc_info is not None) for r in logged] == [("gateway.problems", True)] * 3


# Hostile input is a 4xx problem on REST, a JSON-RPC error on /a2a.

DEEP = b"[" * 10_000 + b"]" * 10_000
NOT_UTF8 = b'{"input": "\xff\xfe"}'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"input": ' + DEEP + b"}", "nested deeper than 64"),
        (NOT_UTF8, "not UTF-8"),
        (b'{"input": "\\udcff"}', "surrogate"),
    ],
)
async def test_hostile_json_bodies_are_400(edge: Edge, body: bytes, detail: str) -> None:
    async with edge.client() as client:
        response = await client.post(
            "/v1/agents/echo/skills/shout", content=body, headers={"content-type": "application/json"}
        )
    assert detail in _problem(response, 400, "bad-json")["detail"]


async def test_json_nested_within_the_limit_is_accepted(edge: Edge) -> None:
    nested: Any = "deep"
    for _ in range(60):
        nested = [nested]
    async with edge.client() as client:
        response = await client.post("/v1/agents/echo/skills/add", json={"input": nested})
    assert response.status_code == 422, response.text  # it reached the agent, which wants two numbers


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (DEEP, -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": ' + DEEP + b"}", -32700),
        (b'{"jsonrpc": "2.0", "id": "\xff", "method": "GetTask", "params": {}}', -32700),
    ],
)
async def test_hostile_json_rpc_bodies_are_json_rpc_errors(edge: Edge, body: bytes, code: int) -> None:
    async with edge.client() as client:
        response = await client.post("/a2a", content=body, headers={"content-type": "application/json"})
    assert _rpc_error(response)["code"] == code


@pytest.mark.parametrize(
    "event_id",
    ["1" * 4300, str(2**64), str(2**64 - 1), "-1", "+5", "0x5", "\u0661\u0662", "\u00b2", "1e3"],
)
async def test_event_ids_are_ascii_digits_within_uint64(edge: Edge, event_id: str) -> None:
    async with edge.client() as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        by_query = await client.get(f"/v1/conversations/{cid}/events", params={"after": event_id})
        by_header = await client.get(
            f"/v1/conversations/{cid}/events", headers={"Last-Event-ID": event_id.encode()}
        )
    _problem(by_query, 400, "bad-event-id")
    _problem(by_header, 400, "bad-event-id")


async def test_a_dead_letter_sequence_beyond_uint64_is_not_found(edge: Edge) -> None:
    async with edge.client() as client:
        beyond = await client.post(f"/v1/dead-letters/{2**64}/replay")
        zero = await client.post("/v1/dead-letters/0/replay")
        listed = await client.get("/v1/dead-letters", params={"after": str(2**64)})
    _problem(beyond, 404, "dead-letter-not-found")
    _problem(zero, 404, "dead-letter-not-found")
    _problem(listed, 400, "bad-parameter")


async def test_an_empty_after_is_refused_and_an_empty_last_event_id_is_none(edge: Edge) -> None:
    async with edge.client() as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        empty_after = await client.get(f"/v1/conversations/{cid}/events", params={"after": ""})
        empty_header = await client.get(
            f"/v1/conversations/{cid}/events?after=x", headers={"Last-Event-ID": ""}
        )
    _problem(empty_after, 400, "bad-event-id")
    _problem(empty_header, 400, "bad-event-id")  # ?after= decides, and x is no event id


@pytest.mark.parametrize("wait", ["nan", "inf", "-1", "1e400", "soon"])
async def test_a_task_wait_is_a_finite_number_of_seconds(edge: Edge, wait: str) -> None:
    async with edge.client() as client:
        task = (await client.post("/v1/agents/echo/skills/shout/tasks", json={"input": "x"})).json()
        response = await client.get(f"/v1/tasks/{task['id']}", params={"wait": wait})
    _problem(response, 400, "bad-wait")


async def test_message_ids_are_bounded_and_headers_too(edge: Edge) -> None:
    path = "/v1/agents/echo/skills/shout/tasks"
    async with edge.client() as client:
        long_body_id = await client.post(path, json={"input": "x", "messageId": "m" * 129})
        long_key = await client.post(path, json={"input": "x"}, headers={"Idempotency-Key": "k" * 129})
        spaced_id = await client.post(path, json={"input": "x", "messageId": "a b"})
        newline_id = await client.post(path, json={"input": "x", "messageId": "ab\n"})
        bad_key_beside_id = await client.post(
            path, json={"input": "x", "messageId": "fine"}, headers={"Idempotency-Key": "not fine"}
        )
        huge_key = await client.post(path, json={"input": "x"}, headers={"Idempotency-Key": "k" * 100_000})
        huge_header = await client.get("/v1/usage", headers={"X-Padding": "p" * 20_000})
        huge_url = await client.get("/v1/usage", params={"padding": "p" * 20_000})
        fits = await client.post(path, json={"input": "x", "messageId": f"{RUN}-" + "m" * 119})
        a2a = await client.post(
            "/a2a",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendMessage",
                "params": {
                    "message": {"messageId": "m" * 100_000, "role": "ROLE_USER", "parts": [{"text": "hi"}]}
                },
            },
        )
    _problem(long_body_id, 422, "invalid-body")
    assert "Idempotency-Key" in _problem(long_key, 422, "invalid-id")["detail"]
    _problem(spaced_id, 422, "invalid-body")
    _problem(newline_id, 422, "invalid-id")
    _problem(bad_key_beside_id, 422, "invalid-id")
    _problem(huge_key, 431, "headers-too-large")
    assert _problem(huge_header, 431, "headers-too-large")["limit"] == 16384
    assert "instance" not in _problem(huge_url, 414, "uri-too-long")  # the URL is not echoed back
    assert fits.status_code == 202, fits.text
    assert _rpc_error(a2a)["code"] == -32602


async def test_a_left_out_input_is_an_empty_text_and_null_a_value(edge: Edge) -> None:
    async with edge.client() as client:
        left_out = await client.post("/v1/agents/echo/skills/shout", json={})
        null = await client.post("/v1/agents/echo/skills/shout", json={"input": None})
        number = await client.post("/v1/agents/echo/skills/shout", json={"input": 5})
    assert left_out.json()["output"] == ""
    assert "expected text, got parts data" in _problem(null, 422, "invalid-input")["detail"]
    _problem(number, 422, "invalid-input")  # a text skill no longer reads a number as ""


# Streaming skills through the REST call: one JSON output, or the chunks as SSE.


def _sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in fields:
            events.append((fields["event"], msgspec.json.decode(fields["data"])))
    return events


async def test_a_streaming_skill_called_for_json_answers_its_whole_output(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.post("/v1/agents/echo/skills/count", json={"input": 5})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "1 2 3 4 5 "
    assert response.json()["message"]["role"] == "ROLE_AGENT"


async def test_a_streaming_skill_called_for_sse_streams_its_chunks_then_the_final_status(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.post(
            "/v1/agents/echo/skills/count", json={"input": 3}, headers={"Accept": "text/event-stream"}
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response.text)
    chunks = [data["artifactUpdate"]["artifact"]["parts"][0]["text"] for name, data in events[:-1]]
    assert [name for name, _ in events] == ["artifact"] * 3 + ["status"]
    assert chunks == ["1 ", "2 ", "3 "]
    final = events[-1][1]["statusUpdate"]
    assert final["taskId"] == response.headers["hivewire-task-id"]
    assert final["status"]["state"] == "TASK_STATE_COMPLETED"
    assert final["status"]["message"]["parts"][0]["text"] == "1 2 3 "


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
async def test_a_streaming_skill_that_refuses_its_input_is_an_http_error(edge: Edge, accept: str) -> None:
    async with edge.client() as client:
        response = await client.post(
            "/v1/agents/echo/skills/count", json={"input": "many"}, headers={"Accept": accept}
        )
    _problem(response, 422, "invalid-input")
