"""The OpenAPI description of ``/mcp``: the Model Context Protocol's streamable-HTTP transport.

The protocol is MCP's own (JSON-RPC 2.0 messages; docs/mcp.md): this
describes the HTTP around it, so a reader of the document knows the route is
there, what it needs, and what it can answer.
"""

from __future__ import annotations

from typing import Any

from gateway.openapi_parts import operation

__all__ = ["mcp_paths"]

_REQUEST = {
    "type": "object",
    "description": "A JSON-RPC 2.0 request or notification of MCP (initialize, tools/list, tools/call, ...).",
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer"]},
        "method": {"type": "string"},
        "params": {"type": "object"},
    },
    "required": ["jsonrpc", "method"],
}
_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo.add", "arguments": {"a": 1, "b": 2}},
}
_RESULT = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {"content": [{"type": "text", "text": '{"total":3}'}], "structuredContent": {"total": 3}},
}
_HEADERS = [
    {
        "name": "MCP-Protocol-Version",
        "in": "header",
        "required": False,
        "description": "The protocol version spoken (after initialize; on every request from 2026-07-28).",
        "schema": {"type": "string"},
        "example": "2025-11-25",
    },
    {
        "name": "Mcp-Session-Id",
        "in": "header",
        "required": False,
        "description": "The session the gateway opened at initialize (handshake-era clients).",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "example": "5b1f0c1e9a7d4f7e8c2b3a4d5e6f7a8b",
    },
]
_ERRORS = ("400", "401", "404", "413", "429", "431")


def _json_or_events(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": _RESULT},
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": f"event: message\ndata: {_RESULT}\n\n".replace("'", '"'),
            },
        },
    }


def mcp_paths() -> dict[str, Any]:
    """``/mcp``: the live skills of the caller's tenant as MCP tools."""
    return {
        "/mcp": {
            "post": operation(
                "mcp",
                "MCP over streamable HTTP: each live skill of the tenant is the tool <agent>.<skill>",
                {
                    "200": _json_or_events("The JSON-RPC response, or a stream of progress and then it"),
                    "202": {"description": "A notification or response, accepted"},
                    "406": {"description": "Accept must name application/json and text/event-stream"},
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _REQUEST, "example": _CALL}},
                },
                parameters=_HEADERS,
                errors=_ERRORS,
            ),
            "get": operation(
                "mcp_events",
                "A handshake-era session's stream of server messages (notifications/tools/list_changed)",
                {
                    "200": {
                        "description": "Server-Sent Events",
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "example": 'event: message\ndata: {"jsonrpc":"2.0",'
                                '"method":"notifications/tools/list_changed"}\n\n',
                            }
                        },
                    },
                    "405": {"description": "Not in this protocol version"},
                    "406": {"description": "Accept must name text/event-stream"},
                },
                parameters=_HEADERS,
                errors=_ERRORS,
            ),
            "delete": operation(
                "mcp_end",
                "End a handshake-era session",
                {
                    "200": {
                        "description": "Ended",
                        "content": {"text/plain": {"schema": {"type": "string"}, "example": ""}},
                    }
                },
                parameters=_HEADERS,
                errors=_ERRORS,
            ),
        }
    }
