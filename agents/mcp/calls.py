"""``ctx.mcp``: a skill's MCP tool calls, within its request's deadline; MCP tools as a model's tools.

A skill calls a tool directly (``await ctx.mcp.call("files", "read", {"path": ...})``)
or hands a model the tools of its servers (``await ctx.mcp.toolbox()``: each
tool becomes a :class:`~agents.tools.FunctionTool` named ``<server>__<tool>``,
run through the process's tool-result cache when the server's ``cache`` option
names it). Every call is bounded by what is left of the caller's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from agents.errors import McpToolError
from agents.llm.cache import digest
from agents.mcp.pool import McpClients
from agents.tools.toolbox import FunctionTool, Toolbox

if TYPE_CHECKING:
    from mcp_types import CallToolResult, Tool

    from agents.context import Context

__all__ = ["McpCalls", "McpResult", "tool_name"]

log = logging.getLogger(__name__)

_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")


class McpResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an MCP tool returned.

    Attributes:
        text: its text content, blocks joined by blank lines (other content is named in brackets).
        data: its structured content, when it gave any.
    """

    text: str
    data: Any = None


def tool_name(server: str, tool: str) -> str:
    """The name a model calls ``server``'s ``tool`` by (letters, digits, ``_`` and ``-``; 64 at most)."""
    return _NOT_NAME.sub("_", f"{server}__{tool}")[:64]


class McpCalls:
    """The MCP servers of the agent, as one request uses them."""

    def __init__(self, clients: McpClients, *, remaining: Callable[[], float | None]) -> None:
        self._clients = clients
        self._remaining = remaining

    @property
    def servers(self) -> list[str]:
        """The names of the agent's MCP servers."""
        return sorted(self._clients.servers)

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any] | msgspec.Struct | None = None,
        *,
        timeout: float | None = None,
    ) -> McpResult:
        """Call ``tool`` on ``server``, within ``timeout`` and the request's deadline.

        Raises:
            McpToolError: the tool reported an error (``kind`` ``tool``), or the call failed
                (``unavailable``, ``closed``, ``timeout``, ``protocol``; see the error).
        """
        result = await self._clients.call(server, tool, _arguments(arguments), timeout=self._within(timeout))
        read = read_result(result)
        if result.is_error:
            raise McpToolError(server, tool, "tool", read.text or "the tool reported an error")
        return read

    async def tools(
        self, *servers: str, timeout: float | None = None, skip_unreachable: bool = False
    ) -> list[FunctionTool[Any, McpResult]]:
        """The tools of ``servers`` (all of the agent's when none are named), as a model's tools.

        The servers are listed at once (a first connection can take a second or two each).
        With ``skip_unreachable``, a server that cannot be reached or listed is left out
        (logged) instead of failing the lot.

        Raises:
            McpToolError: a server cannot be reached or listed (without ``skip_unreachable``).
        """
        names = list(servers or self.servers)
        listed = await asyncio.gather(
            *(self._server_tools(name, timeout) for name in names), return_exceptions=True
        )
        found: list[FunctionTool[Any, McpResult]] = []
        for name, tools in zip(names, listed, strict=True):
            if isinstance(tools, McpToolError) and skip_unreachable:
                log.warning("MCP server %s is left out of the tools offered: %s", name, tools)
                continue
            if isinstance(tools, BaseException):
                raise tools
            found.extend(tools)
        return found

    async def toolbox(
        self, *servers: str, extra: Iterable[FunctionTool[Any, Any]] = (), timeout: float | None = None
    ) -> Toolbox:
        """A :class:`Toolbox` of ``servers``' tools and ``extra`` tools.

        With no server named, every server of the agent that answers: one that cannot be
        reached is left out (logged), so the model still gets the others' tools. A server
        named explicitly must answer (:class:`McpToolError` otherwise).
        """
        tools = await self.tools(*servers, timeout=timeout, skip_unreachable=not servers)
        return Toolbox([*tools, *extra])

    async def _server_tools(self, server: str, timeout: float | None) -> list[FunctionTool[Any, McpResult]]:
        listed = await self._clients.tools(server, timeout=self._within(timeout))
        info = await self._clients.server_info(server, timeout=self._within(timeout))
        version = f"{info.name}@{info.version}" if info is not None else ""
        return [self._function(server, tool, version) for tool in listed]

    def _within(self, timeout: float | None) -> float | None:
        remaining = self._remaining()
        if remaining is None:
            return timeout
        return remaining if timeout is None else min(timeout, remaining)

    def _function(self, server: str, tool: Tool, version: str) -> FunctionTool[Any, McpResult]:
        name = tool.name

        async def run(ctx: Context, arguments: dict[str, Any]) -> McpResult:
            return await ctx.mcp.call(server, name, arguments)

        fingerprint = None
        if self._clients.server(server).caches(name):
            # A new server version, or a changed input schema, makes new keys.
            stamp = digest([server, version, tool.input_schema])

            async def fingerprint(ctx: Context, arguments: dict[str, Any]) -> str:
                return stamp

        return FunctionTool(
            name=tool_name(server, name),
            description=tool.description or tool.title or name,
            parameters=dict[str, Any],
            result_type=McpResult,
            run=run,
            fingerprint=fingerprint,
            render=_render,
            schema=_object_schema(tool.input_schema),
        )


def read_result(result: CallToolResult) -> McpResult:
    """An SDK tool result as an :class:`McpResult`."""
    texts = []
    for block in result.content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            texts.append(text)
        else:
            texts.append(f"[{block.type} {getattr(block, 'mime_type', None) or ''}]".replace(" ]", "]"))
    return McpResult(text="\n\n".join(texts), data=result.structured_content)


def _render(result: McpResult) -> str:
    if result.text or result.data is None:
        return result.text
    return msgspec.json.encode(result.data).decode()


def _arguments(arguments: Mapping[str, Any] | msgspec.Struct | None) -> dict[str, Any] | None:
    if arguments is None:
        return None
    built = msgspec.to_builtins(arguments)
    if not isinstance(built, dict):
        raise TypeError(f"MCP tool arguments are an object, not {type(arguments).__name__}")
    return built


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with an object at its root, as model APIs want it."""
    return schema if schema.get("type") == "object" else {**schema, "type": "object"}
