"""The process's connections to its MCP servers: opened on first use, shared by every request, reopened
after they die.

Each server has one connection (one child process for a stdio server, one
HTTP client for a streamable-HTTP one), held open by a task of its own: the
SDK's client is an async context that must be left by the task that entered
it. Calls from any request go through it concurrently. A call that meets a
closed connection (the server process exited, the HTTP server went away) fails
at once with :class:`~agents.errors.McpToolError` (``closed``) and marks the
connection dead; the next call starts the server again. A call is never
retried by the pool: a tool may have side effects.

The SDK is imported on first connection, so an agent without MCP servers
does not pay for it at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from agents.errors import McpToolError
from agents.mcp.servers import McpServer

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult, Implementation, Tool

__all__ = ["McpClients"]

log = logging.getLogger(__name__)

# Closed-connection and timeout codes of the SDK (mcp_types.CONNECTION_CLOSED, REQUEST_TIMEOUT).
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001


class McpClients:
    """Connections to the MCP servers of one process, by server name."""

    def __init__(
        self, servers: Iterable[McpServer], *, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self._connections = {server.name: _Connection(server) for server in servers}
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer = provider.get_tracer("hivewire.mcp")

    @property
    def servers(self) -> dict[str, McpServer]:
        """The servers, by name."""
        return {name: connection.server for name, connection in self._connections.items()}

    def server(self, name: str) -> McpServer:
        """The server called ``name``.

        Raises:
            McpToolError: there is none (``unavailable``).
        """
        return self._connection(name, "").server

    async def tools(self, server: str, *, timeout: float | None = None) -> list[Tool]:
        """``server``'s tools, from its last listing if younger than its ``tools_ttl``.

        Raises:
            McpToolError: the server cannot be reached or listed within ``timeout``.
        """
        connection = self._connection(server, "tools/list")
        return await connection.tools(timeout=_bounded(timeout, connection.server.timeout))

    async def server_info(self, server: str, *, timeout: float | None = None) -> Implementation | None:
        """What ``server`` says it is (name and version), connecting if needed."""
        connection = self._connection(server, "")
        client = await connection.client(_bounded(timeout, connection.server.connect_timeout))
        return client.server_info

    async def call(
        self, server: str, tool: str, arguments: dict[str, Any] | None, *, timeout: float | None = None
    ) -> CallToolResult:
        """Call ``tool`` on ``server`` within ``timeout`` seconds (the server's own ``timeout`` if
        ``None``), in a client span whose W3C trace context travels in the request's ``_meta``.

        Returns the tool's result, an error result (``is_error``) included.

        Raises:
            McpToolError: no such server, it cannot be reached, the connection closed during
                the call, the deadline passed, or the server answered with a protocol error.
        """
        connection = self._connection(server, tool)
        seconds = _bounded(timeout, connection.server.timeout)
        attributes: dict[str, Any] = {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "hivewire.mcp.server": server,
            "network.transport": "pipe" if connection.server.transport == "stdio" else "tcp",
        }
        if connection.server.url is not None:
            attributes["url.full"] = connection.server.url
        with self._tracer.start_as_current_span(
            f"tools/call {server}.{tool}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            # SEP-414: the caller's trace context rides in the request's _meta.
            meta: dict[str, Any] = {}
            propagate.inject(meta)
            try:
                result = await connection.call(tool, arguments, meta=meta, timeout=seconds)
            except McpToolError as exc:
                span.set_attribute("error.type", exc.kind)
                span.set_status(StatusCode.ERROR, exc.reason)
                raise
            if result.is_error:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
            return result

    async def close(self) -> None:
        """Close every connection (stopping the stdio servers)."""
        await asyncio.gather(*(connection.close() for connection in self._connections.values()))

    def _connection(self, server: str, tool: str) -> _Connection:
        connection = self._connections.get(server)
        if connection is None:
            known = ", ".join(sorted(self._connections)) or "none"
            raise McpToolError(
                server, tool, "unavailable", f"no MCP server {server!r} (the servers: {known})"
            )
        return connection


def _bounded(timeout: float | None, default: float) -> float:
    return default if timeout is None else max(0.0, timeout)


class _Connection:
    """One server's connection, held open by a task until it dies or is closed."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self._client: Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[Client] | None = None
        self._stop = asyncio.Event()
        self._opening = asyncio.Lock()
        # Runners of dead connections, still closing (a child process being reaped).
        self._closing: set[asyncio.Task[None]] = set()
        self._tools: tuple[float, list[Tool]] | None = None
        self.starts = 0

    async def client(self, timeout: float) -> Client:
        """The open client, opening (or reopening) the connection first when needed."""
        async with self._opening:
            if self._runner is None or self._runner.done() or self._stop.is_set():
                self._open()
            assert self._ready is not None
            ready = self._ready
        try:
            async with asyncio.timeout(min(timeout, self.server.connect_timeout)):
                return await asyncio.shield(ready)
        except TimeoutError:
            raise McpToolError(
                self.server.name, "", "unavailable", f"the server did not answer within {timeout:.3g}s"
            ) from None

    async def tools(self, *, timeout: float) -> list[Tool]:
        cached = self._tools
        if cached is not None and time.monotonic() - cached[0] < self.server.tools_ttl:
            return cached[1]
        started = time.monotonic()
        client = await self.client(timeout)
        stop = self._stop
        listed: list[Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(max(0.0, timeout - (time.monotonic() - started))):
                for _ in range(100):  # a paginator that never ends cannot hang us
                    page = await client.list_tools(cursor=cursor)
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError:
            raise McpToolError(
                self.server.name, "tools/list", "timeout", "listing the tools took too long"
            ) from None
        except Exception as exc:
            raise self._failed("tools/list", exc, stop) from exc
        self._tools = (time.monotonic(), listed)
        return listed

    async def call(
        self, tool: str, arguments: dict[str, Any] | None, *, meta: dict[str, Any], timeout: float
    ) -> CallToolResult:
        started = time.monotonic()
        client = await self.client(timeout)
        stop = self._stop
        left = max(0.0, timeout - (time.monotonic() - started))
        try:
            async with asyncio.timeout(left):
                return await client.call_tool(tool, arguments, read_timeout_seconds=left, meta=meta)  # type: ignore[arg-type]
        except TimeoutError:
            raise McpToolError(
                self.server.name, tool, "timeout", f"no result within {timeout:.3g}s (the caller's deadline)"
            ) from None
        except Exception as exc:
            raise self._failed(tool, exc, stop) from exc

    def _failed(self, tool: str, exc: BaseException, stop: asyncio.Event) -> McpToolError:
        from mcp import MCPError

        if isinstance(exc, MCPError) and exc.code == _REQUEST_TIMEOUT:
            return McpToolError(self.server.name, tool, "timeout", exc.message)
        if isinstance(exc, MCPError) and exc.code != _CONNECTION_CLOSED:
            return McpToolError(self.server.name, tool, "protocol", f"{exc.message} (code {exc.code})")
        # The connection is gone (a process that exited, a server that went away): the next
        # call opens a new one.
        self._tools = None
        stop.set()  # this connection's, not a newer one's
        what = "the server process exited" if self.server.transport == "stdio" else "the connection closed"
        detail = exc.message if isinstance(exc, MCPError) else _describe(exc)
        return McpToolError(self.server.name, tool, "closed", f"{what} during the call ({detail})")

    def _open(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._closing.add(self._runner)
            self._runner.add_done_callback(self._closing.discard)
        self._stop = asyncio.Event()
        self._ready = asyncio.get_running_loop().create_future()
        # A context of its own: the connection outlives the request that opened it (and its span).
        self._runner = asyncio.create_task(
            self._run(self._ready, self._stop), name=f"mcp {self.server.name}", context=contextvars.Context()
        )

    async def _run(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        from mcp import Client, StdioServerParameters

        self.starts += 1
        server = self.server
        try:
            async with contextlib.AsyncExitStack() as stack:
                target: Any
                if server.command:
                    target = StdioServerParameters(
                        command=server.command[0],
                        args=list(server.command[1:]),
                        env=server.env or None,
                        cwd=server.cwd,
                    )
                else:
                    assert server.url is not None
                    target = await _http_transport(stack, server.url, server.headers)
                # The SDK's response cache is off: the tool list is cached here, with the server's tools_ttl.
                client = await stack.enter_async_context(Client(target, cache=None))
                self._client = client
                if not ready.done():
                    ready.set_result(client)
                await stop.wait()
        except Exception as exc:  # noqa: BLE001 - whoever waits for the connection learns why it failed
            why = _describe(exc)
            log.warning("MCP server %s: %s", server.name, why)
            if not ready.done():
                ready.set_exception(
                    McpToolError(server.name, "", "unavailable", f"cannot start or reach the server: {why}")
                )
        finally:
            self._client = None
            if not ready.done():
                ready.set_exception(McpToolError(server.name, "", "unavailable", "the connection was closed"))
            with contextlib.suppress(asyncio.CancelledError, McpToolError):
                ready.exception()  # retrieved: a failure nobody waited for is not "never retrieved"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        self._stop.set()
        runners = {*self._closing, *([runner] if runner is not None else [])}
        if not runners:
            return
        _, pending = await asyncio.wait(runners, timeout=5.0)
        if pending:
            log.warning("MCP server %s did not stop in time", self.server.name)


def _describe(exc: BaseException) -> str:
    """What went wrong, from inside the task groups the SDK raises it in."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def _http_transport(stack: contextlib.AsyncExitStack, url: str, headers: dict[str, str]) -> Any:
    """A streamable-HTTP transport for ``url`` sending ``headers`` with each request (the HTTP
    client closes with ``stack``)."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    if not headers:
        return streamable_http_client(url)
    http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
    return streamable_http_client(url, http_client=http)
