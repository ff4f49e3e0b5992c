"""The gateway when NATS goes away: clear errors at once, not ready, and back to work when it returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats
from gateway.keys import ApiKeys
from gateway.settings import GatewaySettings
from tests.gateway_server import serve_gateway
from tests.processes import agent_process
from tests.redis_server import RedisServer


@pytest.mark.slow
async def test_the_gateway_answers_503_while_nats_is_down_and_recovers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as nats:
        settings = GatewaySettings(
            _env_file=None,  # type: ignore[call-arg]
            nats_url=nats.url,
            redis_url=redis_server.url,
            gateway_timeout=2.0,
            nats_request_timeout=2.0,
        )
        bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=nats.url))  # type: ignore[call-arg]
        key = (await (await ApiKeys.open(bus)).create("acme"))[0]
        await bus.close()
        async with (
            agent_process(nats.url, "tests.zoo:echo"),
            serve_gateway(settings) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client,
        ):
            call = {"input": "hi"}
            assert (await client.post("/v1/agents/echo/skills/shout", json=call)).json()["output"] == "HI"

            await asyncio.to_thread(nats.stop)
            await asyncio.sleep(1.2)  # past the gateway's one-second view of the registry
            down = await client.post("/v1/agents/echo/skills/shout", json=call)
            assert down.status_code in (503, 504), down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/healthz")).status_code == 200  # the process itself is fine

            await asyncio.to_thread(nats.start)
            async with asyncio.timeout(20):
                # The registry lives in memory: the restarted server lost it, and the
                # agents' next heartbeats create it again.
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
                while (await client.post("/v1/agents/echo/skills/shout", json=call)).status_code != 200:
                    await asyncio.sleep(0.1)
