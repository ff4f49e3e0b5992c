"""A webhook receiver on loopback, served by uvicorn in the test's event loop: records what it is sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway_server import free_port


@dataclass
class Received:
    """One call of the webhook."""

    path: str
    headers: dict[str, str]
    body: dict[str, object]


@dataclass
class Receiver:
    """What the webhook was sent, and how it answers."""

    url: str
    calls: list[Received] = field(default_factory=list)
    # The next calls answered 503 (the gateway must try again).
    failures: int = 0

    async def until(self, count: int, *, within: float = 15.0) -> list[Received]:
        """Wait until ``count`` calls arrived (answered or not); return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.calls) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.calls


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """Serve a webhook on 127.0.0.1 until the block ends."""
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}")

    async def receive(request: Request) -> Response:
        receiver.calls.append(
            Received(request.url.path, dict(request.headers), msgspec.json.decode(await request.body()))
        )
        if receiver.failures > 0:
            receiver.failures -= 1
            return Response(status_code=503)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
