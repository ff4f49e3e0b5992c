"""A small MCP tool server for the tests, written with the official SDK: over stdio or streamable HTTP.

``python -m tests.mcp_server stdio`` or ``python -m tests.mcp_server http PORT``.
Its tools add numbers, look keys up (counting the look-ups, so a cached result
shows as one that did not run), report the trace context a call carried in
``_meta``, sleep, and crash the server in the middle of a call.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

server = MCPServer("hivewire-test-tools", version="1.0.0")
_lookups: dict[str, int] = {}


class Sum(BaseModel):
    total: int


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(total=a + b)


@server.tool()
def lookup(key: str) -> str:
    """Look a key up; says how many times this process has looked it up."""
    _lookups[key] = _lookups.get(key, 0) + 1
    return f"{key}={key.upper()} (look-up {_lookups[key]} by {os.getpid()})"


@server.tool()
def pid() -> int:
    """The server process's id."""
    return os.getpid()


@server.tool()
def traceparent(ctx: Context) -> str:
    """The W3C traceparent this call carried in its _meta ('' without one)."""
    meta = ctx.request_context.meta or {}
    return str(meta.get("traceparent", ""))


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def crash() -> str:
    """Exit the server process in the middle of the call (no answer is ever sent)."""
    await asyncio.sleep(0.05)
    os._exit(3)


@server.tool()
def fail(reason: str) -> str:
    """Report a tool error."""
    raise ValueError(reason)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", port=int(sys.argv[2]))
    else:
        server.run("stdio")
