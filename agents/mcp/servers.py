"""MCP servers an agent uses: a command to run over stdio, or a streamable-HTTP URL, and their options.

An agent declares them (``Agent(..., mcp_servers=[McpServer(...)])``) and an
operator adds or replaces them by name with ``HIVEWIRE_MCP_SERVERS``, a JSON
object of name to options (``{"files": {"command": ["mcp-files", "/srv"]}}``).
Both are validated when the process starts: a server with neither or both of
``command`` and ``url``, an URL that is not http(s), or an unknown option is
refused with a message naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["SERVER_NAME", "McpServer", "McpServerOptions", "merge_servers"]

SERVER_NAME = r"^[A-Za-z0-9_-]{1,32}$"
"""What an MCP server may be called: its tools are offered to models as ``<server>__<tool>``."""


class McpServerOptions(BaseModel):
    """How to reach one MCP server, and what may be cached of its tools.

    Exactly one of ``command`` (started as a child process, spoken to over
    stdio, started again if it dies) and ``url`` (streamable HTTP).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: tuple[str, ...] = Field(
        default=(), description="The program and its arguments, run as a child process (stdio)."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the command (with a safe default set).",
    )
    cwd: str | None = Field(default=None, description="Working directory of the command.")
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = Field(
        default=None, description="The server's streamable-HTTP endpoint, e.g. http://127.0.0.1:9000/mcp."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers sent with every request (an Authorization header...)."
    )
    cache: tuple[str, ...] = Field(
        default=(),
        description='Tools whose results may be cached (output depends only on input), "*" for all.',
    )
    timeout: float = Field(
        default=30.0, gt=0, description="Seconds a call may take when the caller has no deadline of its own."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to start (or reach) the server and agree on the protocol."
    )
    tools_ttl: float = Field(default=300.0, gt=0, description="Seconds a server's tool list is reused.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerOptions:
        if bool(self.command) == (self.url is not None):
            raise ValueError("give exactly one of command (a stdio server) and url (streamable HTTP)")
        if self.url is not None and (self.env or self.cwd):
            raise ValueError("env and cwd apply to a command, not to a url")
        if self.command and self.headers:
            raise ValueError("headers apply to a url, not to a command")
        return self

    def caches(self, tool: str) -> bool:
        """Whether ``tool``'s results may be served from the tool-result cache."""
        return "*" in self.cache or tool in self.cache


class McpServer(McpServerOptions):
    """An MCP server with its name, as an agent declares it."""

    name: Annotated[str, StringConstraints(pattern=SERVER_NAME)]

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command else "http"


def merge_servers(
    declared: Iterable[McpServer], configured: Mapping[str, McpServerOptions]
) -> dict[str, McpServer]:
    """The agent's servers by name: its declared ones, each replaced or joined by the configured ones."""
    servers = {server.name: server for server in declared}
    for name, options in configured.items():
        servers[name] = McpServer(name=name, **options.model_dump())
    return servers
