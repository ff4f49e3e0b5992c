"""MCP tool servers for agents: declared per agent or by settings, pooled per process, as ``ctx.mcp``.

The official ``mcp`` SDK speaks the protocol; it is imported when the first
connection opens, so agents without MCP servers start without it.
"""

from agents.mcp.calls import McpCalls, McpResult, tool_name
from agents.mcp.pool import McpClients
from agents.mcp.servers import McpServer, McpServerOptions, merge_servers

__all__ = [
    "McpCalls",
    "McpClients",
    "McpResult",
    "McpServer",
    "McpServerOptions",
    "merge_servers",
    "tool_name",
]
