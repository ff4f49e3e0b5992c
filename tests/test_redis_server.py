"""The test Redis server is a real redis-server that tests can take away and bring back."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.redis_server import RedisServer

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client that fails at once: redis-py's default retries would take seconds to give up."""
    client = aioredis.Redis.from_url(server.url, retry=Retry(NoBackoff(), 0))
    yield client
    await client.aclose()


async def test_set_and_get(client: aioredis.Redis) -> None:
    await client.set("greeting", "hello")
    assert await client.get("greeting") == b"hello"


async def test_stop_is_a_connection_error_and_restart_comes_back_empty(
    server: RedisServer, client: aioredis.Redis
) -> None:
    await client.set("greeting", "hello")
    port = server.port

    server.stop()
    with pytest.raises(RedisConnectionError):
        await client.get("greeting")

    server.restart()
    assert server.port == port
    assert await client.get("greeting") is None, "nothing is persisted"
    await client.set("greeting", "again")
    assert await client.get("greeting") == b"again"


def test_a_taken_port_is_reported_with_the_server_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="exited with code"):
            server.start()
    assert not server.running
