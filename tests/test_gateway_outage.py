"""The gateway when NATS goes away: 503 bus-unavailable (never 500), not ready, and no agent
called missing while the mesh announces itself again after the server restarts."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bus import EmbeddedNats, new_id
from gateway.settings import GatewaySettings
from tests.gateway_server import api_keys, serve_gateway
from tests.processes import agent_process, paused
from tests.redis_server import RedisServer

# Beats far apart: after the restart only the agent's announcement on reconnecting
# can put it back in the registry (which lived in the old server's memory) this soon.
HEARTBEAT = 10.0
QUICK_RECONNECT = {"nats_reconnect_wait": 0.2, "nats_reconnect_max_wait": 0.5}


def quick_to_give_up(nats: EmbeddedNats, redis: RedisServer, **extra: Any) -> GatewaySettings:
    """A gateway on ``nats`` that waits a second for it, not the default five."""
    return GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats.url,
        redis_url=redis.url,
        gateway_timeout=1.0,
        nats_request_timeout=1.0,
        nats_jetstream_timeout=1.0,
        **extra,
    )


def bus_unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/bus-unavailable"), body
    return body


@pytest.mark.slow
async def test_the_gateway_answers_503_while_nats_is_down_and_recovers_without_a_404(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as nats:
        settings = quick_to_give_up(nats, redis_server, heartbeat_interval=HEARTBEAT, **QUICK_RECONNECT)
        key = (await api_keys(nats.url, "acme"))["acme"]
        agent_env = {
            "HIVEWIRE_HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "HIVEWIRE_NATS_RECONNECT_WAIT": "0.2",
            "HIVEWIRE_NATS_RECONNECT_MAX_WAIT": "0.5",
        }
        async with (
            agent_process(nats.url, "tests.zoo:echo", **agent_env),
            serve_gateway(settings) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client,
        ):
            call = {"input": "hi"}
            assert (await client.post("/v1/agents/echo/skills/shout", json=call)).json()["output"] == "HI"
            done = await client.post("/v1/agents/echo/skills/shout/tasks", json=call)
            task_id = done.json()["id"]

            await asyncio.to_thread(nats.stop)
            async with asyncio.timeout(10):
                while (await client.get("/readyz")).status_code != 503:
                    await asyncio.sleep(0.05)
            assert (await client.get("/healthz")).status_code == 200  # the process itself is fine
            bus_unavailable(await client.post("/v1/agents/echo/skills/shout", json=call))
            submitted = bus_unavailable(
                await client.post(
                    "/v1/agents/echo/skills/shout/tasks", json=call, headers={"Idempotency-Key": new_id()}
                )
            )
            if "taskId" in submitted:  # not confirmed as queued: its id, to look it up later
                assert len(submitted["taskId"]) == 32
            bus_unavailable(await client.get(f"/v1/tasks/{task_id}"))
            # The A2A endpoint: a JSON-RPC error (HTTP 200), and HTTP+JSON's 503.
            rpc = await client.post(
                "/a2a/agents/echo",
                json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}},
            )
            assert rpc.status_code == 200, rpc.text
            error = rpc.json()["error"]
            assert error["code"] == -32603
            assert error["data"][0]["reason"] == "UNAVAILABLE"
            assert error["data"][0]["metadata"]["problem"] == "bus-unavailable"
            rest = await client.get(f"/a2a/agents/echo/tasks/{task_id}")
            assert (rest.status_code, rest.headers["retry-after"]) == (503, "1"), rest.text
            assert rest.json()["error"]["status"] == "UNAVAILABLE"

            await asyncio.to_thread(nats.start)
            started = time.monotonic()
            seen: collections.Counter[int] = collections.Counter()
            async with asyncio.timeout(HEARTBEAT):
                while True:
                    # Looked up in the registry first (a card), then called.
                    response = await client.get("/v1/agents/echo")
                    if response.status_code == 200:
                        response = await client.post("/v1/agents/echo/skills/shout", json=call)
                    seen[response.status_code] += 1
                    if response.status_code == 200:
                        break
                    # Unavailable, or not answered in time: never "no such agent", never a 500.
                    assert response.status_code in (503, 504), response.text
                    assert "agent-not-found" not in response.text
                    await asyncio.sleep(0.05)
            recovered = time.monotonic() - started
            # Well within a heartbeat: the agent announced itself on reconnecting.
            assert recovered < HEARTBEAT * 0.6, (recovered, seen)
            async with asyncio.timeout(10):
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
            print(f"\nrecovered {recovered:.2f}s after NATS restarted; answers meanwhile: {dict(seen)}")


@pytest.mark.slow
async def test_a_paused_nats_is_a_503_that_says_so_and_the_gateway_resumes_without_an_error(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering without closing connections (paused, overloaded): each
    request waits its time, then is a 503 that says what happened; once it answers again, so does
    the gateway, with nothing logged as an error."""
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as nats:
        settings = quick_to_give_up(nats, redis_server)
        key = (await api_keys(nats.url, "acme"))["acme"]
        async with (
            serve_gateway(settings) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client,
        ):
            task_id = new_id()
            assert (await client.get(f"/v1/tasks/{task_id}")).status_code == 404
            assert nats.pid is not None
            async with paused(nats.pid):
                answer = bus_unavailable(await client.get(f"/v1/tasks/{task_id}"))
            assert answer["detail"].startswith("NATS did not answer in time"), answer
            async with asyncio.timeout(10):
                while (await client.get(f"/v1/tasks/{task_id}")).status_code != 404:
                    await asyncio.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
