"""The gateway served by uvicorn inside the test's event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import uvicorn
from uvicorn._types import ASGIApplication

from agents.settings import AgentSettings
from bus import Bus
from bus.telemetry import Telemetry
from gateway.app import create_app
from gateway.keys import ApiKeys
from gateway.settings import GatewaySettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve_gateway(settings: GatewaySettings, telemetry: Telemetry | None = None) -> AsyncIterator[str]:
    """Serve the gateway (the same stack as ``hivewire gateway``) until the block ends; yields its URL."""
    async with serve_app(create_app(settings, telemetry)) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApplication) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn as ``hivewire gateway`` does until the block ends; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def api_keys(nats_url: str, *tenants: str) -> dict[str, str]:
    """A new API key for each of ``tenants``, made on a connection of its own (closed again)."""
    bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=nats_url))  # type: ignore[call-arg]
    try:
        keys = await ApiKeys.open(bus)
        return {tenant: (await keys.create(tenant))[0] for tenant in tenants}
    finally:
        await bus.close()


def local_address(response: httpx.Response) -> tuple[str, int]:
    """The client's end of the connection a response came on (port -1: the server dropped it)."""
    try:
        address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    except OSError:
        return ("dropped", -1)
    return address
