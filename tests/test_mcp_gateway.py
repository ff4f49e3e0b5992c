"""The gateway's /mcp endpoint, driven by the official MCP SDK's client: the mesh's skills as MCP tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agents import Agent, Context
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats, new_id, subjects
from bus.telemetry import Telemetry
from gateway.keys import ApiKeys
from gateway.mcp import TOKEN_BUDGET_EXHAUSTED
from gateway.settings import GatewaySettings, TenantLimits
from tests.gateway_server import serve_gateway
from tests.redis_server import RedisServer
from tests.zoo import echo

RUN = new_id()[:8]
ACME, GLOBEX, SLOW, FUZZ, BROKE = (f"{name}{RUN}" for name in ("acme", "globex", "slow", "fuzz", "broke"))

vault = Agent(f"vault{RUN}", description="Keeps one tenant's secrets.", tenants=(GLOBEX,))


@vault.skill
async def peek(ctx: Context, name: str) -> str:
    """Say what the secret is called."""
    return f"secret {name} of {ctx.tenant}"


@dataclass
class Mcp:
    url: str
    keys: dict[str, str]
    exporter: InMemorySpanExporter
    provider: TracerProvider
    bus: Bus
    settings: AgentSettings

    @contextlib.asynccontextmanager
    async def client(self, tenant: str = ACME, **options: Any) -> AsyncIterator[Client]:
        """The SDK's client, connected to /mcp with ``tenant``'s key."""
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant in self.keys else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=30)) as http,
            Client(streamable_http_client(f"{self.url}/mcp", http_client=http), **options) as client,
        ):
            yield client


@pytest.fixture(scope="module")
async def mcp(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Mcp]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_timeout=5.0,
        gateway_key_cache=0,
        heartbeat_interval=0.5,
        gateway_tenant_limits={
            SLOW: TenantLimits(rate=0.2, burst=1),
            FUZZ: TenantLimits(rate=10_000, burst=10_000),
            BROKE: TenantLimits(daily_tokens=10),
        },
    )
    agent_settings = AgentSettings(_env_file=None, nats_url=nats_server.url, heartbeat_interval=0.5)  # type: ignore[call-arg]
    bus = await Bus.connect(agent_settings, tracer_provider=provider)
    keys = await ApiKeys.open(bus)
    made = {tenant: (await keys.create(tenant))[0] for tenant in (ACME, GLOBEX, SLOW, FUZZ, BROKE)}
    telemetry = Telemetry(service_name="hivewire-gateway", tracer_provider=provider)
    try:
        async with (
            AgentRuntime(echo, bus, agent_settings),
            AgentRuntime(vault, bus, agent_settings),
            serve_gateway(settings, telemetry) as url,
        ):
            yield Mcp(url, made, exporter, provider, bus, agent_settings)
    finally:
        await bus.close()


async def _names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


def _text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def test_the_live_skills_are_listed_as_tools_with_their_input_schemas(mcp: Mcp) -> None:
    async with mcp.client() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    add = tools["echo.add"]
    assert add.input_schema["type"] == "object"
    assert set(add.input_schema["required"]) == {"a", "b"}
    assert "Add two numbers." in (add.description or "")
    # A skill that takes a text takes it as the argument "input".
    assert tools["echo.shout"].input_schema["properties"]["input"]["type"] == "string"
    assert tools["echo.shout"].input_schema["required"] == ["input"]


async def test_a_tool_call_is_the_skill_called_over_the_bus(mcp: Mcp) -> None:
    async with mcp.client() as client:
        added = await client.call_tool("echo.add", {"a": 2, "b": 3})
        shouted = await client.call_tool("echo.shout", {"input": "hello"})
    assert not added.is_error
    assert added.structured_content is not None
    assert added.structured_content["total"] == 5
    assert _text(shouted) == "HELLO"


async def test_bad_arguments_are_tool_errors_that_say_why(mcp: Mcp) -> None:
    async with mcp.client() as client:
        wrong_type = await client.call_tool("echo.add", {"a": "two", "b": 3})
        missing = await client.call_tool("echo.shout", {})
        extra = await client.call_tool("echo.shout", {"input": "x", "loud": True})
        with pytest.raises(MCPError, match=r"no tool 'echo\.nope'"):
            await client.call_tool("echo.nope", {})
    assert wrong_type.is_error
    assert "invalid input" in _text(wrong_type)
    assert "Expected `int`" in _text(wrong_type)
    assert missing.is_error
    assert "'input' is required" in _text(missing)
    assert extra.is_error
    assert "unexpected arguments ['loud']" in _text(extra)


async def test_a_streaming_skill_reports_each_chunk_as_progress(mcp: Mcp) -> None:
    seen: list[tuple[float, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, message))

    async with mcp.client() as client:
        result = await client.call_tool("echo.count", {"input": 3}, progress_callback=progress)
    assert _text(result) == "1 2 3 "
    assert seen == [(1, "1 "), (2, "2 "), (3, "3 ")]


async def test_an_agent_joining_while_a_client_listens_is_announced(mcp: Mcp) -> None:
    latecomer = Agent(f"latecomer{RUN}", description="Joins late.")

    @latecomer.skill
    async def hello(ctx: Context, name: str) -> str:
        """Greet."""
        return f"hello {name}"

    async with mcp.client() as client, client.listen(tools_list_changed=True) as changes:
        before = {tool.name for tool in (await client.list_tools()).tools}
        assert f"latecomer{RUN}.hello" not in before
        async with AgentRuntime(latecomer, mcp.bus, mcp.settings):
            # Each change is announced (another test's agent leaving, too): refetch on each.
            async with asyncio.timeout(10):
                while True:
                    assert isinstance(await anext(changes), ToolsListChanged)
                    if f"latecomer{RUN}.hello" in await _names(client):
                        break
            assert _text(await client.call_tool(f"latecomer{RUN}.hello", {"input": "mcp"})) == "hello mcp"


async def test_a_handshake_era_client_lists_calls_and_hears_of_changes_on_its_session(mcp: Mcp) -> None:
    heard = asyncio.Event()

    async def on_message(message: Any) -> None:
        if getattr(getattr(message, "root", message), "method", "") == "notifications/tools/list_changed":
            heard.set()

    late = Agent(f"late{RUN}", description="Joins late, for an older client.")

    @late.skill
    async def ping(ctx: Context, text: str) -> str:
        """Pong."""
        return "pong"

    async with mcp.client(mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed
        assert _text(await client.call_tool("echo.shout", {"input": "old"})) == "OLD"
        await client.list_tools()
        async with AgentRuntime(late, mcp.bus, mcp.settings), asyncio.timeout(10):
            while True:
                await heard.wait()
                heard.clear()
                if f"late{RUN}.ping" in await _names(client):
                    break


async def test_a_client_without_a_valid_key_is_refused(mcp: Mcp) -> None:
    mcp.keys["forged"] = "hw_not-a-key"
    for tenant in ("nobody", "forged"):
        with pytest.raises(BaseException) as refused:  # noqa: PT011 - the SDK raises it in a task group
            async with mcp.client(tenant) as client:
                await client.list_tools()
        assert isinstance(_cause(refused.value), MCPError), repr(refused.value)
        async with httpx2.AsyncClient(headers=_auth(mcp, tenant)) as http:
            plain = await http.post(f"{mcp.url}/mcp", json=_INITIALIZE, headers=_ACCEPT)
        assert plain.status_code == 401
        assert plain.headers["content-type"] == "application/problem+json"
        assert plain.headers["www-authenticate"].startswith("Bearer")


def _auth(mcp: Mcp, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mcp.keys[tenant]}"} if tenant in mcp.keys else {}


def _cause(error: BaseException) -> BaseException:
    """The one error inside (nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


_ACCEPT = {"Accept": "application/json, text/event-stream"}
_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


async def test_a_tenant_sees_and_calls_only_the_agents_that_serve_it(mcp: Mcp) -> None:
    tool = f"vault{RUN}.peek"
    async with mcp.client(ACME) as acme:
        assert tool not in {t.name for t in (await acme.list_tools()).tools}
        with pytest.raises(MCPError, match="no tool"):
            await acme.call_tool(tool, {"input": "x"})
    async with mcp.client(GLOBEX) as globex:
        assert tool in {t.name for t in (await globex.list_tools()).tools}
        assert _text(await globex.call_tool(tool, {"input": "key"})) == f"secret key of {GLOBEX}"


async def test_the_rate_limit_applies_as_on_rest(mcp: Mcp) -> None:
    async with httpx2.AsyncClient(headers={**_auth(mcp, SLOW), **_ACCEPT}) as http:
        answers = [await http.post(f"{mcp.url}/mcp", json=_INITIALIZE) for _ in range(3)]
    assert answers[0].status_code == 200
    limited = answers[-1]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["retry-after"]) >= 1


async def test_the_callers_trace_runs_through_the_gateway_to_the_agent(mcp: Mcp) -> None:
    tracer = mcp.provider.get_tracer("test")
    async with mcp.client() as client:
        with tracer.start_as_current_span("mcp client turn") as turn:
            await client.call_tool("echo.add", {"a": 1, "b": 1})
    trace_id = turn.get_span_context().trace_id
    spans = [s for s in mcp.exporter.get_finished_spans() if s.context.trace_id == trace_id]
    (gateway,) = (s for s in spans if s.name == "tools/call echo.add")
    assert gateway.kind is SpanKind.SERVER
    assert gateway.parent is not None
    assert gateway.parent.span_id == turn.get_span_context().span_id
    processed = [s for s in spans if s.name.startswith("process ") and s.name.endswith(".echo.add")]
    assert processed, [s.name for s in spans]
    assert gateway.attributes is not None
    assert gateway.attributes["hivewire.tenant"] == ACME


_HOSTILE = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b"[" * 5000 + b"]" * 5000,
    b"\xff\xfe{}",
    b'{"jsonrpc":"2.0"}',
    b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
    b'{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo.add","arguments":[1,2]}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"../../etc","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"no/such/method"}',
    b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]',
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
    b'{"jsonrpc":"2.0","id":1,"result":{}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":{"a":1}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}' + b" " * 70_000,
]
_VERSIONS = [{}, {"MCP-Protocol-Version": "2025-11-25"}, {"MCP-Protocol-Version": "2026-07-28"}]


async def test_hostile_input_to_mcp_gets_no_5xx_and_no_dropped_connection(mcp: Mcp) -> None:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
    messages = st.fixed_dictionaries(
        {
            "jsonrpc": st.sampled_from(["2.0", "2", 2]),
            "method": st.sampled_from(_METHODS) | st.text(max_size=12),
        },
        optional={"id": st.integers() | st.text(max_size=8) | st.none(), "params": json_values},
    )
    sent: list[tuple[int, bytes]] = []
    json_type = {"Content-Type": "application/json"}

    def attack() -> None:  # in a thread: the gateway answers on this test's event loop
        with httpx2.Client(base_url=mcp.url, headers={**_auth(mcp, FUZZ), **_ACCEPT}, timeout=20) as http:

            def send(body: bytes, headers: dict[str, str], method: str = "POST") -> None:
                answer = http.request(method, "/mcp", content=body, headers=headers)
                assert answer.status_code < 500, (body[:200], headers, answer.status_code, answer.text[:300])
                sent.append((answer.status_code, body))

            for body in _HOSTILE:
                for version in _VERSIONS:
                    send(body, {**json_type, **version})
                send(body, {})
            for method in ("GET", "DELETE"):
                for version in _VERSIONS:
                    send(b"", {**version, "Mcp-Session-Id": "f" * 32}, method)
                    send(b"", version, method)
            send(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', {**json_type, "Accept": "text/html"})
            send(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', {"Content-Type": "text/plain"})

            @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(message=messages, version=st.sampled_from(_VERSIONS))
            def fuzz(message: dict[str, Any], version: dict[str, str]) -> None:
                send(json.dumps(message).encode(), {**json_type, **version})

            fuzz()

    await asyncio.to_thread(attack)
    assert len(sent) > 150
    statuses = {status for status, _ in sent}
    assert statuses <= {200, 202, 400, 404, 405, 406, 413, 415}, statuses


_METHODS = ["initialize", "tools/list", "tools/call", "server/discover", "subscriptions/listen", "ping"]


async def test_a_session_belongs_to_the_tenant_whose_key_opened_it(mcp: Mcp) -> None:
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx2.AsyncClient(headers=_ACCEPT) as http:
        opened = await http.post(f"{mcp.url}/mcp", json=_INITIALIZE, headers=_auth(mcp, ACME))
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        own = await http.post(f"{mcp.url}/mcp", json=listing, headers={**_auth(mcp, ACME), **session})
        other = await http.post(f"{mcp.url}/mcp", json=listing, headers={**_auth(mcp, GLOBEX), **session})
    assert own.status_code == 200
    assert other.status_code == 404


async def test_a_tool_call_over_the_token_budget_is_refused(mcp: Mcp, redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.set(subjects.token_budget_key(BROKE, time.strftime("%Y%m%d", time.gmtime())), 1000)
    await client.aclose()
    async with mcp.client(BROKE) as broke:
        assert "echo.add" in {tool.name for tool in (await broke.list_tools()).tools}
        with pytest.raises(MCPError, match="used its 10 model tokens") as refused:
            await broke.call_tool("echo.add", {"a": 1, "b": 2})
    assert refused.value.code == TOKEN_BUDGET_EXHAUSTED
