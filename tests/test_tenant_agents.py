"""Agents of some tenants only: to every other tenant, and to anonymous callers, they are no agent at all.

An agent declared with ``Agent(..., tenants=[...])`` is hidden on every surface
of the gateway alike: REST listing, detail and skills, conversations, the public
OpenAPI document, A2A cards and operations on both bindings, MCP (see
tests/test_mcp_gateway.py). Each answer is the very one an agent that does not
exist gets, so nothing tells a caller that it exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.errors import AgentCardResolutionError
from a2a.types import GetExtendedAgentCardRequest, TaskState

from agents import Agent, Context
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats, new_id
from gateway.a2a.cards import TENANT_EXTENSION
from gateway.settings import GatewaySettings
from tests.gateway_server import api_keys, serve_gateway
from tests.redis_server import RedisServer
from tests.test_a2a_endpoint import BINDINGS, send, send_request
from tests.zoo import echo

RUN = new_id()[:8]
ACME, GLOBEX = f"acme{RUN}", f"globex{RUN}"
VAULT, NOBODY = f"vault{RUN}", f"nobody{RUN}"
_SSE = {"Accept": "text/event-stream"}
_CARD = "/.well-known/agent-card.json"

# Globex's own agent, and the gateway's default agent: what the origin's card describes.
vault = Agent(VAULT, description="Keeps one tenant's secrets.", tenants=(GLOBEX,))


@vault.skill
async def peek(ctx: Context, name: str) -> str:
    """Say what the secret is called."""
    return f"secret {name} of {ctx.tenant}"


@vault.skill
async def recite(ctx: Context, upto: int) -> AsyncIterator[str]:
    """Stream the secrets' numbers."""
    for i in range(1, upto + 1):
        yield f"{i} "


@dataclass
class Gateway:
    url: str
    keys: dict[str, str]

    def http(self, tenant: str | None = None) -> httpx.AsyncClient:
        """A client with ``tenant``'s key (``None``: anonymous); a prompt answer or a failed test."""
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
async def gateway(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Gateway]:
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent=VAULT,
        gateway_skill="peek",
        # Longer than the clients wait: a refusal that waited for an agent would fail the test.
        gateway_timeout=30.0,
        gateway_key_cache=0,
    )
    agent_settings = AgentSettings(_env_file=None, nats_url=nats_server.url, heartbeat_interval=0.5)  # type: ignore[call-arg]
    made = await api_keys(nats_server.url, ACME, GLOBEX)
    bus = await Bus.connect(agent_settings)
    try:
        async with (
            AgentRuntime(echo, bus, agent_settings),
            AgentRuntime(vault, bus, agent_settings),
            serve_gateway(settings) as url,
        ):
            yield Gateway(url, made)
    finally:
        await bus.close()


def _swap(value: Any) -> Any:
    """``value`` with the restricted agent's name put for the unknown one's (and request ids left out)."""
    if isinstance(value, str):
        return value.replace(VAULT, NOBODY)
    if isinstance(value, list):
        return [_swap(item) for item in value]
    if isinstance(value, dict):
        return {key: _swap(item) for key, item in value.items() if key not in ("id", "instance")}
    return value


def _same_as_unknown(restricted: httpx.Response, unknown: httpx.Response) -> None:
    assert restricted.status_code == unknown.status_code
    assert restricted.headers["content-type"] == unknown.headers["content-type"]
    assert _swap(restricted.json()) == _swap(unknown.json())


async def test_other_tenants_neither_list_nor_read_it_and_the_public_document_leaves_it_out(
    gateway: Gateway,
) -> None:
    async with gateway.http(ACME) as acme, gateway.http(GLOBEX) as globex, gateway.http() as anonymous:
        theirs = {agent["name"] for agent in (await acme.get("/v1/agents")).json()}
        ours = {agent["name"] for agent in (await globex.get("/v1/agents")).json()}
        detail = await acme.get(f"/v1/agents/{VAULT}")
        unknown = await acme.get(f"/v1/agents/{NOBODY}")
        own = await globex.get(f"/v1/agents/{VAULT}")
        document = (await anonymous.get("/openapi.json")).text
    assert "echo" in theirs
    assert VAULT not in theirs
    assert {"echo", VAULT} <= ours
    assert detail.status_code == 404
    assert detail.json()["type"].endswith("agent-not-found")
    _same_as_unknown(detail, unknown)
    assert own.status_code == 200
    assert VAULT not in document


@pytest.mark.parametrize("skill", ["peek", "recite"])
async def test_other_tenants_calling_or_queueing_its_skills_get_agent_not_found(
    gateway: Gateway, skill: str
) -> None:
    value = "key" if skill == "peek" else 3
    async with gateway.http(ACME) as acme, gateway.http(GLOBEX) as globex:
        answers = {}
        for agent in (VAULT, NOBODY):
            answers[agent] = [
                await acme.post(f"/v1/agents/{agent}/skills/{skill}", json={"input": value}),
                await acme.post(f"/v1/agents/{agent}/skills/{skill}", json={"input": value}, headers=_SSE),
                await acme.post(f"/v1/agents/{agent}/skills/{skill}/tasks", json={"input": value}),
                await acme.post("/v1/conversations", json={"agent": agent, "skill": skill}),
            ]
        own = await globex.post(f"/v1/agents/{VAULT}/skills/{skill}", json={"input": value})
    for restricted, unknown in zip(answers[VAULT], answers[NOBODY], strict=True):
        assert restricted.status_code == 404, restricted.text
        assert restricted.json()["type"].endswith("agent-not-found")
        _same_as_unknown(restricted, unknown)
    assert own.status_code == 200
    assert own.json()["output"] == ("secret key of " + GLOBEX if skill == "peek" else "1 2 3 ")


async def test_its_public_cards_are_404_as_an_unknown_agents_whoever_asks(gateway: Gateway) -> None:
    # The gateway's default agent is the restricted one: the origin's card and /a2a's are its.
    async with gateway.http() as anonymous, gateway.http(GLOBEX) as globex:
        unknown = await anonymous.get(f"/a2a/agents/{NOBODY}{_CARD}")
        for client in (anonymous, globex):  # a public card is the same for everyone
            for path in (_CARD, f"/a2a{_CARD}", f"/a2a/agents/{VAULT}{_CARD}"):
                answer = await client.get(path)
                _same_as_unknown(answer, unknown)
        echo_card = await anonymous.get(f"/a2a/agents/echo{_CARD}")
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("agent-not-found")
    assert echo_card.status_code == 200


@pytest.mark.parametrize("binding", BINDINGS)
async def test_its_extended_card_is_for_the_tenants_it_serves_only(gateway: Gateway, binding: str) -> None:
    """A client of an allowed tenant builds itself from the extended card, which other tenants cannot read."""
    url = f"{gateway.url}/a2a/agents/{VAULT}"
    for tenant in (ACME, GLOBEX):
        http = httpx.AsyncClient(headers={"Authorization": f"Bearer {gateway.keys[tenant]}"}, timeout=10)
        config = ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=[binding])
        try:
            if tenant == ACME:
                with pytest.raises(AgentCardResolutionError) as refused:
                    await ClientFactory(config).create_from_url(url, relative_card_path="extendedAgentCard")
                assert refused.value.status_code == 404
                continue
            client = await ClientFactory(config).create_from_url(url, relative_card_path="extendedAgentCard")
            try:
                card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
                task = await send(client, send_request("key", "peek"))
            finally:
                await client.close()
        finally:
            await http.aclose()
    extension = next(e for e in card.capabilities.extensions if e.uri == TENANT_EXTENSION)
    assert (card.name, extension.params["tenant"]) == (VAULT, GLOBEX)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == f"secret key of {GLOBEX}"


def _rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def _message(*, now: bool = False) -> dict[str, Any]:
    return {
        "message": {
            "messageId": new_id(),
            "role": "ROLE_USER",
            "parts": [{"text": "key"}],
            "metadata": {"skill": "peek"},
        },
        "configuration": {"returnImmediately": now},
    }


async def test_other_tenants_a2a_operations_get_the_unknown_agents_error_at_once(gateway: Gateway) -> None:
    """JSON-RPC and HTTP+JSON alike: messages (blocking, streaming, queued) and the extended card."""

    async def ask(client: httpx.AsyncClient, agent: str) -> list[httpx.Response]:
        base = f"/a2a/agents/{agent}"
        return [
            await client.post(base, json=_rpc("SendMessage", _message())),
            await client.post(base, json=_rpc("SendMessage", _message(now=True))),
            await client.post(base, json=_rpc("SendStreamingMessage", _message()), headers=_SSE),
            await client.post(base, json=_rpc("GetExtendedAgentCard", {})),
            await client.post(f"{base}/message:send", json=_message()),
            await client.post(f"{base}/message:send", json=_message(now=True)),
            await client.post(f"{base}/message:stream", json=_message(), headers=_SSE),
            await client.get(f"{base}/extendedAgentCard"),
        ]

    async with gateway.http(ACME) as acme:
        restricted, unknown = await ask(acme, VAULT), await ask(acme, NOBODY)
        # The default agent's interface, /a2a, is the restricted agent's too.
        default = await acme.post("/a2a", json=_rpc("SendMessage", _message()))
        tasks = (await acme.get(f"/a2a/agents/{VAULT}/tasks")).json()
    for mine, theirs in zip(restricted, unknown, strict=True):
        _same_as_unknown(mine, theirs)
    jsonrpc, rest = [a.json()["error"] for a in (*restricted[:4], default)], restricted[4:]
    for error in jsonrpc:
        assert error["code"] == -32602  # invalid params: the agent is the request's
        assert error["data"][0]["reason"] == "AGENT_NOT_FOUND"
        assert f"no agent named {VAULT!r}" in error["message"]
    for answer in rest:
        assert answer.status_code == 404
        assert answer.json()["error"]["status"] == "NOT_FOUND"
        assert f"no agent named {VAULT!r}" in answer.json()["error"]["message"]
    assert tasks["tasks"] == []  # nothing was queued for it
