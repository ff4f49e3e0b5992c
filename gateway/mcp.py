"""``/mcp``: the mesh's live skills as an MCP server (streamable HTTP), per tenant, with the SDK's server.

Each request is let in as a REST request is (the tenant's API key, its rate
limit; a tool call also needs token budget left) before the SDK's session
manager sees it; a stateful session belongs to the tenant whose key opened it.
``tools/list`` lists the skills of the live agents the tenant may use (see
:mod:`gateway.mcp_tools`); ``tools/call`` calls the skill over the bus within
the gateway's deadline, a streaming skill's chunks reported as progress. A skill
that refuses its input, an agent that is gone or late, are tool errors the
model reads (``isError``), never HTTP errors. The W3C trace context of a call's
``_meta`` parents the gateway's span, so the agent's spans join the caller's
trace. :mod:`gateway.mcp_changes` tells connected clients when the list changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

import msgspec
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    TextContent,
)
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from agents.calls import Caller
from agents.mesh import Mesh
from agents.payloads import to_message
from bus.a2a import Message, Role, new_id
from bus.errors import RemoteError, RequestError
from bus.tracing import TENANT_ATTRIBUTE
from gateway.discovery import live_agents
from gateway.guard import Admitted, Guard
from gateway.http import MAX_JSON_DEPTH, read_body, too_deep
from gateway.mcp_changes import ToolChanges
from gateway.mcp_tools import SkillTool, parse_tool_name, skill_tools
from gateway.problems import Problem, problem_response
from gateway.replies import Reply
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter, spend_of

__all__ = ["TOKEN_BUDGET_EXHAUSTED", "McpEndpoint"]

TOKEN_BUDGET_EXHAUSTED = -32029
"""The JSON-RPC error of a tool call refused because the tenant's daily token budget is used up."""

_ADMITTED = "hivewire.admitted"
_encoder = msgspec.json.Encoder()


class _MeshServer(Server[Any]):
    """The SDK's low-level server, advertising ``tools.listChanged`` to handshake-era clients too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class McpEndpoint:
    """The ``/mcp`` route: an ASGI app in front of the SDK's streamable-HTTP session manager."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        guard: Guard,
        usage: UsageMeter,
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._usage = usage
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer("hivewire.gateway.mcp")
        self.changes = ToolChanges(self._visible, interval=settings.heartbeat_interval / 2)
        self._server = _MeshServer(
            "hivewire",
            version=version("hivewire"),
            title="Hivewire agent mesh",
            instructions="Each tool is one skill of a live agent of the mesh, named <agent>.<skill>.",
            # Listed per tenant: a listing may be reused by the client that asked, not shared.
            cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
            # No tool declares Mcp-Param headers: nothing to validate before a call (the SDK
            # would otherwise list every tool to find out).
            get_tool_input_schema=lambda name: None,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=self._listen,
        )
        self._sessions = StreamableHTTPSessionManager(
            self._server,
            max_request_body_size=settings.gateway_max_body,
            session_idle_timeout=600.0,
        )

    def routes(self) -> list[Route]:
        return [Route("/mcp", self, methods=["GET", "POST", "DELETE"], name="mcp")]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP sessions (and tell them of changes) until the block ends."""
        async with self._sessions.run(), self.changes.running():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            admitted = await self._guard.admit(request)
        except Problem as problem:
            await problem_response(problem, request.url.path)(scope, receive, send)
            return
        if request.method == "POST":
            # The gateway's limits before the SDK parses anything: the size, and a nesting
            # depth its JSON parser could only meet by recursing.
            try:
                body = await read_body(request, self._settings.gateway_max_body)
                if too_deep(body):
                    detail = f"JSON is nested deeper than {MAX_JSON_DEPTH} levels"
                    raise Problem(400, "bad-json", "The body is not valid JSON", detail)
            except Problem as problem:
                await problem_response(problem, request.url.path)(scope, receive, send)
                return
            receive = _replay(body, receive)
        scope.setdefault("state", {})[_ADMITTED] = admitted
        # The SDK binds a stateful session to the principal that opened it: the tenant.
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=admitted.tenant, scopes=[]))
        await self._sessions.handle_request(scope, receive, send)

    async def _visible(self, tenant: str) -> dict[str, SkillTool]:
        return skill_tools(await live_agents(self._mesh, tenant=tenant))

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        tenant = _admitted(ctx).tenant
        tools = await self._visible(tenant)
        self.changes.watch_session(tenant, ctx, tools)
        return ListToolsResult(tools=[tool.tool for tool in tools.values()])

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        return await self.changes.listen(_admitted(ctx).tenant, ctx, params)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        admitted = _admitted(ctx)
        parsed = parse_tool_name(params.name)
        tool = None
        if parsed is not None:
            tool = (await self._visible(admitted.tenant)).get(params.name)
        if tool is None:
            raise MCPError(INVALID_PARAMS, f"no tool {params.name!r}: list the tools for the live skills")
        try:
            await self._guard.require_tokens(admitted)
        except Problem as problem:
            raise MCPError(TOKEN_BUDGET_EXHAUSTED, problem.detail, {"status": problem.status}) from None
        parent = propagate.extract(ctx.meta) if ctx.meta and "traceparent" in ctx.meta else None
        with self._tracer.start_as_current_span(
            f"tools/call {tool.name}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool.name,
                TENANT_ATTRIBUTE: admitted.tenant,
            },
        ) as span:
            result = await self._run(ctx, admitted, tool, params.arguments)
            if result.is_error:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
            return result

    async def _run(
        self,
        ctx: ServerRequestContext[Any, Any],
        admitted: Admitted,
        tool: SkillTool,
        arguments: dict[str, Any] | None,
    ) -> CallToolResult:
        try:
            value = tool.input_of(arguments)
        except ValueError as exc:
            return _tool_error(f"invalid arguments for {tool.name}: {exc}")
        caller = self._mesh.caller(admitted.tenant, timeout=self._settings.gateway_timeout)
        message = to_message(value, role=Role.USER, context_id=caller.context_id)
        try:
            if tool.streaming:
                reply = await self._stream(ctx, caller, tool, message)
            else:
                reply = await caller.call(tool.agent, tool.skill, message)
        except RemoteError as exc:
            return _tool_error(f"{tool.name} failed ({exc.code}): {exc.message}")
        except RequestError as exc:
            return _tool_error(f"{tool.name} could not be reached: {exc}")
        await self._usage.record(admitted.tenant, spend=spend_of(reply))
        return _tool_result(reply)

    async def _stream(
        self, ctx: ServerRequestContext[Any, Any], caller: Caller, tool: SkillTool, message: Message
    ) -> Message:
        """Call a streaming skill, each chunk a progress notification; the reply is all of them."""
        task_id = new_id()
        message = msgspec.structs.replace(message, task_id=task_id)
        reply = Reply(context_id=message.context_id, task_id=task_id)
        chunks = 0
        async with caller.stream(tool.agent, tool.skill, message) as events:
            async for event in events:
                reply.add(event)
                if isinstance(event.artifact_update, msgspec.UnsetType):
                    continue
                chunks += 1
                parts = event.artifact_update.artifact.parts
                text = "".join(p.text if isinstance(p.text, str) else _json(p.data) for p in parts)
                await ctx.session.report_progress(chunks, None, text)
        return reply.message()


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body, already read, given again first."""
    pending = [body]

    async def replayed() -> AsgiMessage:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


def _admitted(ctx: ServerRequestContext[Any, Any]) -> Admitted:
    request = ctx.request
    admitted = getattr(request.state, _ADMITTED, None) if isinstance(request, Request) else None
    if not isinstance(admitted, Admitted):  # only requests through McpEndpoint reach the server
        raise MCPError(INVALID_PARAMS, "not an HTTP request of the gateway")
    return admitted


def _tool_result(reply: Message) -> CallToolResult:
    """A skill's reply as the tool's result: its text, and its data as structured content."""
    data = next((p.data for p in reply.parts if not isinstance(p.data, msgspec.UnsetType)), None)
    text = reply.text if reply.text else _json(data)
    structured = data if isinstance(data, dict) else None
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured)


def _tool_error(reason: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=reason)], is_error=True)


def _json(value: object) -> str:
    return "" if value is None else _encoder.encode(value).decode()
