"""Agents using MCP tool servers (tests/mcp_server.py) over stdio and streamable HTTP: calls, a model's
tools, the tool-result cache, deadlines, a server that dies mid-call, and the trace through ``_meta``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from agents import Agent, ChatMessage, Context, Mesh
from agents.errors import McpToolError
from agents.mcp import McpServer, tool_name
from agents.resources import Resources
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats, new_id
from tests.gateway_server import free_port
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer

RUN = new_id()[:8]
# A loaded CI machine starts a Python child slowly: room to connect beyond the default 10 s.
STDIO = McpServer(
    name="local", command=(sys.executable, "-m", "tests.mcp_server"), cache=("lookup",), connect_timeout=30
)


class Use(msgspec.Struct, frozen=True, kw_only=True):
    server: str
    tool: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout: float | None = None
    cached: bool = False  # through the server's toolbox (and the tool-result cache)


class Used(msgspec.Struct, frozen=True, kw_only=True):
    text: str = ""
    data: Any = None
    error: str = ""
    cached: str = ""


toolsmith = Agent(f"toolsmith{RUN}", description="Uses MCP tools.", mcp_servers=[STDIO])


@toolsmith.skill
async def use(ctx: Context, request: Use) -> Used:
    """Call an MCP tool, directly or as a model would (through the toolbox and its cache)."""
    try:
        if request.cached:
            toolbox = await ctx.mcp.toolbox(request.server)
            ran = await toolbox.run(
                ctx, toolbox.call(tool_name(request.server, request.tool), request.arguments)
            )
            return Used(text=ran.text, error=ran.error, cached=ran.cached)
        result = await ctx.mcp.call(request.server, request.tool, request.arguments, timeout=request.timeout)
    except McpToolError as exc:
        return Used(error=f"{exc.kind}: {exc.reason}")
    return Used(text=result.text, data=result.data)


@toolsmith.skill
async def ask(ctx: Context, question: str) -> str:
    """Answer with the help of a model that may call the MCP tools."""
    toolbox = await ctx.mcp.toolbox()
    chat = [ChatMessage.user(question)]
    first = await ctx.llm.complete(chat, tools=toolbox.declarations)
    results = await toolbox.run_all(ctx, first.tool_calls)
    chat += [first.message, *(ChatMessage.tool(r.call, r.text) for r in results)]
    return (await ctx.llm.complete(chat, tools=toolbox.declarations)).text


@dataclass
class Smith:
    mesh: Mesh
    http_port: int
    exporter: InMemorySpanExporter
    provider: TracerProvider

    async def use(
        self, server: str, tool: str, arguments: dict[str, Any] | None = None, **options: Any
    ) -> Used:
        request = Use(server=server, tool=tool, arguments=arguments or {}, **options)
        reply: Used = await self.mesh.caller(f"t{RUN}", timeout=40).call(toolsmith.name, "use", request, Used)
        return reply


@contextlib.asynccontextmanager
async def _http_server(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """tests/mcp_server.py over streamable HTTP on ``port``, until the block ends (or it crashes)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_server", "http", str(port), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            await asyncio.sleep(0.05)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.fixture(scope="module")
async def smith(
    nats_server: EmbeddedNats, redis_server: RedisServer, openai_server: OpenAIServer
) -> AsyncIterator[Smith]:
    port = free_port()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        llm_base_url=openai_server.url,
        llm_model="test-model",
        # The HTTP server comes from the settings (HIVEWIRE_MCP_SERVERS), the stdio one from the agent.
        mcp_servers={
            "remote": {
                "url": f"http://127.0.0.1:{port}/mcp",
                "cache": ["*"],
                "tools_ttl": 1,
                "connect_timeout": 30,
            }
        },
    )
    bus = await Bus.connect(settings, tracer_provider=provider)
    resources = Resources.from_settings(settings, tracer_provider=provider)
    mesh = await Mesh.open(bus, settings)
    try:
        async with (
            _http_server(port),
            AgentRuntime(toolsmith, bus, settings, resources=resources),
        ):
            yield Smith(mesh, port, exporter, provider)
    finally:
        await resources.close()
        await bus.close()


@pytest.mark.parametrize("server", ["local", "remote"])
async def test_a_skill_calls_an_mcp_tool_directly(smith: Smith, server: str) -> None:
    added = await smith.use(server, "add", {"a": 2, "b": 40})
    assert added.data == {"total": 42}
    failed = await smith.use(server, "add", {"a": "two"})
    assert failed.error.startswith("tool: ")
    assert "validation error" in failed.error
    unknown = await smith.use("nowhere", "add")
    assert unknown.error == "unavailable: no MCP server 'nowhere' (the servers: local, remote)"


async def test_a_model_calls_mcp_tools_through_the_toolbox(
    smith: Smith, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.call_tool("remote__add", '{"a": 20, "b": 22}')
    answer = await smith.mesh.caller(f"t{RUN}", timeout=20).call(
        toolsmith.name, "ask", "What is 20 + 22?", str
    )
    assert answer.startswith("tool said: ")
    assert '"total": 42' in answer
    offered = {tool["function"]["name"] for tool in model_endpoint.requests[0]["tools"]}
    assert {"local__add", "remote__add", "local__lookup"} <= offered
    add = next(t for t in model_endpoint.requests[0]["tools"] if t["function"]["name"] == "remote__add")
    assert add["function"]["parameters"]["required"] == ["a", "b"]


@pytest.mark.parametrize("server", ["local", "remote"])
async def test_a_cacheable_tool_is_answered_from_the_tool_result_cache(smith: Smith, server: str) -> None:
    key = f"k{new_id()[:6]}"
    first = await smith.use(server, "lookup", {"key": key}, cached=True)
    again = await smith.use(server, "lookup", {"key": key}, cached=True)
    assert "(look-up 1 " in first.text
    assert first.cached == ""
    assert again.text == first.text  # not run again: the server would say "look-up 2"
    assert again.cached == "local"
    # Not marked cacheable on the stdio server: runs every time.
    pid = await smith.use("local", "pid", cached=True)
    assert (await smith.use("local", "pid", cached=True)).cached == ""
    assert pid.cached == ""


async def test_a_call_is_bounded_by_the_callers_deadline(smith: Smith) -> None:
    started = asyncio.get_running_loop().time()
    late = await smith.use("local", "slow", {"seconds": 10}, timeout=0.5)
    assert late.error == "timeout: no result within 0.5s (the caller's deadline)"
    assert asyncio.get_running_loop().time() - started < 5
    assert (await smith.use("local", "add", {"a": 1, "b": 1})).data == {"total": 2}


async def test_a_stdio_server_that_dies_mid_call_is_a_clear_error_and_is_started_again(smith: Smith) -> None:
    before = (await smith.use("local", "pid")).data
    crashed = await asyncio.wait_for(smith.use("local", "crash"), timeout=10)
    assert crashed.error.startswith("closed: the server process exited during the call")
    after = (await smith.use("local", "pid")).data
    assert after != before
    assert isinstance(after, dict)


async def test_the_mcp_hop_is_inside_the_turns_trace(smith: Smith) -> None:
    tracer = smith.provider.get_tracer("test")
    with tracer.start_as_current_span("turn") as turn:
        echoed = await smith.use("local", "traceparent")
    spans = smith.exporter.get_finished_spans()
    trace_id = turn.get_span_context().trace_id
    (hop,) = (s for s in spans if s.name == "tools/call local.traceparent" and s.context.trace_id == trace_id)
    assert hop.kind is SpanKind.CLIENT
    assert hop.attributes is not None
    assert hop.attributes["mcp.method.name"] == "tools/call"
    # The server received the hop's own span as the parent of its work.
    _, received_trace, parent, _ = echoed.text.split("-")
    assert int(received_trace, 16) == trace_id
    assert int(parent, 16) == hop.context.span_id
    # and the hop sits in the agent's handling of the turn: turn -> request -> process -> hop.
    ids = {s.context.span_id: s for s in spans if s.context.trace_id == trace_id}
    chain = []
    span = hop
    while span.parent is not None and span.parent.span_id in ids:
        span = ids[span.parent.span_id]
        chain.append(span.name)
    assert chain[-1] == "turn"
    assert any(name.startswith("process ") for name in chain)


async def test_an_http_server_that_goes_away_mid_call_is_a_clear_error_and_is_reached_again(
    smith: Smith, model_endpoint: OpenAIServer
) -> None:
    crashed = await asyncio.wait_for(smith.use("remote", "crash"), timeout=15)
    assert crashed.error.startswith("closed: the connection closed during the call"), crashed.error
    down = await asyncio.wait_for(smith.use("remote", "add", {"a": 1, "b": 2}), timeout=15)
    assert down.error.startswith("unavailable: cannot start or reach the server: ConnectError"), down.error
    # Meanwhile a model is offered the tools of the servers that answer, not none at all.
    await asyncio.sleep(1.1)  # past the remote server's tool list's time to live
    model_endpoint.call_tool("local__add", '{"a": 1, "b": 2}')
    answer = await smith.mesh.caller(f"t{RUN}", timeout=40).call(toolsmith.name, "ask", "1 + 2?", str)
    assert '"total": 3' in answer
    offered = {tool["function"]["name"] for tool in model_endpoint.requests[0]["tools"]}
    assert "local__add" in offered
    assert not any(name.startswith("remote__") for name in offered)
    async with _http_server(smith.http_port):
        back = await asyncio.wait_for(smith.use("remote", "add", {"a": 1, "b": 2}), timeout=30)
        assert back.data == {"total": 3}, back


def test_servers_are_validated_when_settings_are_read() -> None:
    with pytest.raises(ValidationError, match="exactly one of command"):
        AgentSettings(_env_file=None, mcp_servers={"x": {}})  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="exactly one of command"):
        AgentSettings(_env_file=None, mcp_servers={"x": {"command": ["a"], "url": "http://h/mcp"}})  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="should match pattern"):
        AgentSettings(_env_file=None, mcp_servers={"x": {"url": "ftp://h/mcp"}})  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="should match pattern"):
        AgentSettings(_env_file=None, mcp_servers={"a b": {"url": "http://h/mcp"}})  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="Extra inputs"):
        AgentSettings(_env_file=None, mcp_servers={"x": {"url": "http://h/mcp", "tiemout": 3}})  # type: ignore[call-arg]
