"""The gateway: HTTP into bus conversations, streamed replies, tenants, limits, errors as problems."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from agents import Mesh
from bus import EmbeddedNats, new_id
from bus.a2a import Message, Task, TaskState, TaskStatus
from gateway.settings import GatewaySettings, TenantLimits
from tests.gateway_server import api_keys, serve_gateway
from tests.openai_server import OpenAIServer
from tests.processes import agent_process, hivewire
from tests.redis_server import RedisServer

RUN = new_id()[:8]


class Gateway:
    def __init__(self, url: str, keys: dict[str, str], settings: GatewaySettings) -> None:
        self.url = url
        self.keys = keys
        self.settings = settings

    def client(self, tenant: str = "acme", **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant in self.keys else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20, **kwargs)


@pytest.fixture(scope="module")
async def gateway(
    nats_server: EmbeddedNats, redis_server: RedisServer, openai_server: OpenAIServer
) -> AsyncIterator[Gateway]:
    env = {"HIVEWIRE_REDIS_URL": redis_server.url, "HIVEWIRE_LLM_BASE_URL": openai_server.url}
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent="assistant",
        gateway_skill="chat",
        gateway_timeout=2.0,
        gateway_max_body=4096,
        gateway_key_cache=0,
        gateway_tenant_limits={f"slow{RUN}": TenantLimits(rate=0.5, burst=2)},
    )
    async with (
        agent_process(nats_server.url, "tests.zoo:echo"),
        agent_process(nats_server.url, "tests.zoo:assistant", **env),
        serve_gateway(settings) as url,
    ):
        yield Gateway(url, await api_keys(nats_server.url, "acme", "globex", f"slow{RUN}"), settings)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def _streamed_turn(client: httpx.AsyncClient, text: str) -> tuple[str, httpx.Response]:
    """A new conversation's id and its first turn, asked for as a stream of events."""
    cid = (await client.post("/v1/conversations")).json()["id"]
    response = await client.post(
        f"/v1/conversations/{cid}/messages", json={"text": text}, headers={"Accept": "text/event-stream"}
    )
    return cid, response


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body: id, event and decoded data."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event"):
                fields[name] = value
            elif name == "data":
                fields["data"] = msgspec.json.decode(value)
        if "data" in fields:
            events.append(fields)
    return events


async def test_requests_without_a_valid_key_get_401(gateway: Gateway) -> None:
    async with gateway.client(tenant="nobody") as client:
        _problem(await client.get("/v1/agents"), 401)
        bad = await client.get("/v1/agents", headers={"Authorization": "Bearer hw_not-a-key"})
        assert _problem(bad, 401)["type"].endswith("/unauthorized")
        assert bad.headers["www-authenticate"].startswith("Bearer")


async def test_keys_are_created_listed_and_revoked_from_the_command_line(
    gateway: Gateway, nats_server: EmbeddedNats
) -> None:
    key = (await hivewire(nats_server.url, "keys", "create", "--tenant", "initech", "--name", "ci")).strip()
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": key}) as client:
        assert (await client.get("/v1/usage")).json()["tenant"] == "initech"
        listed = msgspec.json.decode(
            await hivewire(nats_server.url, "keys", "list", "--tenant", "initech", "--json")
        )
        assert [(k["tenant"], k["name"]) for k in listed] == [("initech", "ci")]
        assert key not in str(listed)
        await hivewire(nats_server.url, "keys", "revoke", listed[0]["id"])
        _problem(await client.get("/v1/usage"), 401)


async def test_live_agents_are_listed_with_their_skills(gateway: Gateway) -> None:
    async with gateway.client() as client:
        response = await client.get("/v1/agents")
        card = await client.get("/v1/agents/echo")
    assert response.status_code == 200
    agents = {agent["name"]: agent for agent in response.json()}
    assert {"echo", "assistant"} <= agents.keys()
    assert "shout" in agents["echo"]["skills"]
    assert agents["echo"]["replicas"] == 1
    assert "RateLimit-Remaining" in response.headers
    assert card.json()["card"]["version"] == "1.2.0"


async def test_a_skill_is_called_with_json_and_answers_json(gateway: Gateway) -> None:
    async with gateway.client() as client:
        shout = await client.post("/v1/agents/echo/skills/shout", json={"input": "hi"})
        add = await client.post("/v1/agents/echo/skills/add", json={"input": {"a": 2, "b": 40}})
    assert shout.json()["output"] == "HI"
    assert add.json()["output"]["total"] == 42


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "kind"),
    [
        (
            "/v1/agents/echo/skills/shout",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "bad-json",
        ),
        ("/v1/agents/echo/skills/shout", {"json": {"input": "hi", "extra": 1}}, 422, "invalid-body"),
        ("/v1/agents/echo/skills/shout", {"json": {"input": "x" * 5000}}, 413, "too-large"),
        (
            "/v1/agents/echo/skills/shout",
            {"content": b"hi", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported-media-type",
        ),
        ("/v1/agents/echo/skills/add", {"json": {"input": "not numbers"}}, 422, "invalid-input"),
        ("/v1/agents/nobody/skills/shout", {"json": {"input": "hi"}}, 404, "agent-not-found"),
        ("/v1/agents/echo/skills/nothing", {"json": {"input": "hi"}}, 404, "skill-not-found"),
        ("/v1/agents/echo/skills/nap", {"json": {"input": 5.0}}, 504, "deadline-exceeded"),
        ("/v1/agents/ec.ho/skills/shout", {"json": {"input": "hi"}}, 400, "invalid-name"),
    ],
)
async def test_bad_requests_get_a_clear_problem_and_the_gateway_keeps_serving(
    gateway: Gateway, path: str, kwargs: dict[str, Any], status: int, kind: str
) -> None:
    async with gateway.client() as client:
        body = _problem(await client.post(path, **kwargs), status)
        assert body["type"].endswith("/" + kind)
        assert (await client.post("/v1/agents/echo/skills/shout", json={"input": "ok"})).json()[
            "output"
        ] == "OK"


async def test_an_agent_whose_replicas_all_died_gets_503(gateway: Gateway, nats_server: EmbeddedNats) -> None:
    async with gateway.client("globex") as client, agent_process(nats_server.url, "tests.zoo:jobs") as jobs:
        for _ in range(50):  # until the gateway has seen it
            if "jobs" in [a["name"] for a in (await client.get("/v1/agents")).json()]:
                break
            await asyncio.sleep(0.1)
        jobs.process.kill()  # gone without a word: the registry still lists it for a moment
        await jobs.process.wait()
        response = await client.post("/v1/agents/jobs/skills/work", json={"input": {"n": 1, "seconds": 0}})
    assert _problem(response, 503)["type"].endswith("/no-replica")
    assert response.headers["Retry-After"] == "1"


async def test_a_skill_whose_callee_has_no_replica_gets_503_to_try_again(gateway: Gateway) -> None:
    async with gateway.client("globex") as client:
        response = await client.post("/v1/agents/echo/skills/ask_absent", json={"input": "hi"})
    problem = _problem(response, 503)
    assert problem["type"].endswith("/unavailable")
    assert problem["detail"].startswith("agent 'absent' has no live replica serving 'ping'")
    assert problem["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"


async def test_a_conversation_answers_in_json_and_keeps_its_history(
    gateway: Gateway, openai_server: OpenAIServer
) -> None:
    openai_server.reply("big", "Open Settings, then Security.")
    async with gateway.client() as client:
        created = await client.post("/v1/conversations")
        assert created.status_code == 201
        cid = created.json()["id"]
        assert created.headers["location"] == f"/v1/conversations/{cid}"
        turn = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "How do I enable 2FA?"})
        second = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "And then?"})
        history = await client.get(f"/v1/conversations/{cid}/messages")
    assert turn.status_code == 200, turn.text
    assert turn.json()["text"] == "Open Settings, then Security."
    assert second.json()["conversationId"] == cid
    assert [m["content"] for m in history.json()["messages"]] == [
        "How do I enable 2FA?",
        "Open Settings, then Security.",
        "And then?",
        "Open Settings, then Security.",
    ]
    # The second turn reached the model with the first one as context.
    assert [m["content"] for m in openai_server.requests[-1]["messages"]][:2] == [
        "How do I enable 2FA?",
        "Open Settings, then Security.",
    ]


async def test_a_streamed_turn_sends_tokens_then_the_final_status_and_a_reconnect_resumes(
    gateway: Gateway, openai_server: OpenAIServer
) -> None:
    openai_server.reply("big", "Open Settings, then Security.")
    async with gateway.client() as client:
        cid, response = await _streamed_turn(client, "How do I enable 2FA?")
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse(response.text)
        # A client that dropped after the second event reconnects with Last-Event-ID.
        replay = await client.get(
            f"/v1/conversations/{cid}/events", headers={"Last-Event-ID": events[1]["id"]}
        )
    # The question opens the turn's events (the conversation's log), then the turn starts working.
    assert [e["event"] for e in events[:2]] == ["message", "status"]
    assert events[0]["data"]["message"]["parts"][0]["text"] == "How do I enable 2FA?"
    tokens = [
        e["data"]["artifactUpdate"]["artifact"]["parts"][0]["text"]
        for e in events
        if e["event"] == "artifact"
    ]
    assert "".join(tokens) == "Open Settings, then Security."
    final = events[-1]["data"]["statusUpdate"]
    assert final["status"]["state"] == "TASK_STATE_COMPLETED"
    assert final["status"]["message"]["parts"][0]["text"] == "Open Settings, then Security."
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    assert [e["id"] for e in _sse(replay.text)] == [e["id"] for e in events[2:]]


async def test_a_streamed_turn_recorded_twice_is_in_the_history_once(
    gateway: Gateway, openai_server: OpenAIServer, mesh: Mesh
) -> None:
    """A gateway that dies after writing a turn but before acknowledging it has the turn recorded
    again by another: the history still has it once."""
    openai_server.reply("big", "Open Settings, then Security.")
    async with gateway.client() as client:
        cid, response = await _streamed_turn(client, "How do I enable 2FA?")
        events = _sse(response.text)
        question = msgspec.convert(events[0]["data"]["message"], Message)
        reply = msgspec.convert(events[-1]["data"]["statusUpdate"]["status"]["message"], Message)
        # The same ended turn, queued again (as a redelivery would bring it), is recorded again.
        again = Task(
            id=new_id(),
            context_id=cid,
            history=(question,),
            status=TaskStatus.now(TaskState.COMPLETED, reply),
        )
        await mesh.turns.ended("acme", again)
        assert await mesh.turns.recorded("acme", again.id, timeout=10)
        history = await client.get(f"/v1/conversations/{cid}/messages")
    assert [m["content"] for m in history.json()["messages"]] == [
        "How do I enable 2FA?",
        "Open Settings, then Security.",
    ]


async def test_any_replica_serves_any_conversation(gateway: Gateway, openai_server: OpenAIServer) -> None:
    openai_server.reply("big", "Open Settings, then Security.")
    headers = {"Authorization": f"Bearer {gateway.keys['acme']}"}
    async with (
        serve_gateway(gateway.settings) as other_url,
        httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=20) as first,
        httpx.AsyncClient(base_url=other_url, headers=headers, timeout=20) as second,
    ):
        cid = (await first.post("/v1/conversations")).json()["id"]
        streamed = await second.post(
            f"/v1/conversations/{cid}/messages",
            json={"text": "How do I enable 2FA?"},
            headers={"Accept": "text/event-stream"},
        )
        events = _sse(streamed.text)
        replay = await first.get(
            f"/v1/conversations/{cid}/events", headers={"Last-Event-ID": events[0]["id"]}
        )
        history = await first.get(f"/v1/conversations/{cid}/messages")
    assert [e["id"] for e in _sse(replay.text)] == [e["id"] for e in events[1:]]
    assert [m["content"] for m in history.json()["messages"]] == [
        "How do I enable 2FA?",
        "Open Settings, then Security.",
    ]


async def test_a_turn_that_fails_ends_its_stream_with_a_failed_status(gateway: Gateway) -> None:
    async with gateway.client() as client:
        created = await client.post("/v1/conversations", json={"agent": "echo", "skill": "nap"})
        cid = created.json()["id"]
        response = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"text": "not a number"},
            headers={"Accept": "text/event-stream"},
        )
        json_turn = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "not a number"})
    final = _sse(response.text)[-1]["data"]["statusUpdate"]
    assert final["status"]["state"] == "TASK_STATE_FAILED"
    assert final["status"]["message"]["metadata"]["problem"]["status"] == 422
    _problem(json_turn, 422)


async def test_a_streamed_turn_that_outlives_its_time_ends_failed_with_a_504(gateway: Gateway) -> None:
    async with gateway.client() as client:
        created = await client.post("/v1/conversations", json={"agent": "echo", "skill": "nap"})
        cid = created.json()["id"]
        response = await client.post(
            f"/v1/conversations/{cid}/messages",
            # Seconds to nap: the gateway gives each attempt at a turn 2.
            json={"message": {"messageId": new_id(), "role": "ROLE_USER", "parts": [{"data": 3.0}]}},
            headers={"Accept": "text/event-stream"},
        )
        record = await client.get(f"/v1/tasks/{response.headers['hivewire-task-id']}")
    final = _sse(response.text)[-1]["data"]["statusUpdate"]
    assert final["status"]["state"] == "TASK_STATE_FAILED"
    metadata = final["status"]["message"]["metadata"]
    assert metadata["error"]["code"] == "deadline_exceeded"
    assert metadata["problem"]["status"] == 504
    # The turn is a task of its conversation, failed the same way.
    assert record.json()["status"]["state"] == "TASK_STATE_FAILED"
    assert record.json()["metadata"]["turn"] is True
    assert record.json()["contextId"] == cid


async def test_a_turn_for_an_agent_with_no_live_replica_is_a_503(gateway: Gateway) -> None:
    from agents.mesh import Mesh
    from bus.client import Bus
    from gateway.index import RECORD
    from gateway.turns import Conversation

    bus = await Bus.connect(gateway.settings)
    try:
        # A conversation whose agent has since left the mesh.
        gone = Conversation(id=new_id(), agent=f"gone{RUN}", skill="chat", created_at=0.0, streaming=True)
        await (await Mesh.open(bus, gateway.settings)).state("acme", gone.id).put(RECORD, gone)
    finally:
        await bus.close()
    async with gateway.client() as client:
        path = f"/v1/conversations/{gone.id}/messages"
        streamed = await client.post(path, json={"text": "hi"}, headers={"Accept": "text/event-stream"})
        plain = await client.post(path, json={"text": "hi"})
    assert _problem(streamed, 503)["type"].endswith("no-replica")
    assert _problem(plain, 503)["type"].endswith("no-replica")


async def test_conversations_require_a_live_agent_and_valid_messages(gateway: Gateway) -> None:
    async with gateway.client() as client:
        _problem(await client.post("/v1/conversations", json={"agent": "nobody"}), 404)
        _problem(await client.post("/v1/conversations", json={"agent": "echo", "skill": "nothing"}), 404)
        _problem(await client.post("/v1/conversations/nope/messages", json={"text": "hi"}), 404)
        cid = (await client.post("/v1/conversations")).json()["id"]
        _problem(await client.post(f"/v1/conversations/{cid}/messages", json={}), 422)
        _problem(await client.post(f"/v1/conversations/{cid}/messages", json={"text": " "}), 422)


async def test_tenants_never_see_each_others_conversations_or_tasks(gateway: Gateway) -> None:
    async with gateway.client("acme") as acme, gateway.client("globex") as globex:
        cid = (await acme.post("/v1/conversations")).json()["id"]
        task = (await acme.post("/v1/agents/echo/skills/add/tasks", json={"input": {"a": 1, "b": 1}})).json()
        assert (await acme.get(f"/v1/conversations/{cid}")).status_code == 200
        for path in (
            f"/v1/conversations/{cid}",
            f"/v1/conversations/{cid}/messages",
            f"/v1/tasks/{task['id']}",
        ):
            _problem(await globex.get(path), 404)
        _problem(await globex.post(f"/v1/conversations/{cid}/messages", json={"text": "hi"}), 404)
        _problem(await globex.post(f"/v1/tasks/{task['id']}/cancel"), 404)


async def test_two_tenants_with_the_same_idempotency_key_get_a_task_each(gateway: Gateway) -> None:
    # Keys are the clients' own: within the de-duplication window, another tenant's
    # key must neither swallow this tenant's task nor hand over its result.
    key = {"Idempotency-Key": f"shared-{RUN}"}
    path = "/v1/agents/echo/skills/add/tasks"
    async with gateway.client("acme") as acme, gateway.client("globex") as globex:
        mine = await acme.post(path, json={"input": {"a": 1, "b": 1}}, headers=key)
        theirs = await globex.post(path, json={"input": {"a": 2, "b": 2}}, headers=key)
        again = await acme.post(path, json={"input": {"a": 1, "b": 1}}, headers=key)
        assert (mine.status_code, theirs.status_code, again.status_code) == (202, 202, 202)
        assert mine.json()["id"] != theirs.json()["id"]
        assert again.json()["id"] == mine.json()["id"]  # the same tenant's repeat: the same task
        done_mine = (await acme.get(f"/v1/tasks/{mine.json()['id']}", params={"wait": 5})).json()
        done_theirs = (await globex.get(f"/v1/tasks/{theirs.json()['id']}", params={"wait": 5})).json()
    assert done_mine["status"]["state"] == done_theirs["status"]["state"] == "TASK_STATE_COMPLETED"
    assert done_mine["artifacts"][0]["parts"][0]["data"]["total"] == 2
    assert done_theirs["artifacts"][0]["parts"][0]["data"]["total"] == 4


async def test_a_tenants_knowledge_is_never_searched_by_another_tenant(
    gateway: Gateway, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    article = {
        "source": "password.md",
        "text": "# Password\n\n## Reset link expired\n\nLinks last 60 minutes.\n",
    }
    query = {"input": {"query": "my reset link stopped working"}}
    async with (
        agent_process(nats_server.url, "knowledge.agent:knowledge", HIVEWIRE_CHROMA_PATH=str(tmp_path)),
        gateway.client("acme") as acme,
        gateway.client("globex") as globex,
    ):
        added = await acme.post("/v1/agents/knowledge/skills/ingest", json={"input": article})
        mine = await acme.post("/v1/agents/knowledge/skills/search", json=query)
        theirs = await globex.post("/v1/agents/knowledge/skills/search", json=query)
    assert added.json()["output"]["added"] == 1, added.text
    assert mine.json()["output"]["passages"][0]["heading"] == "Reset link expired"
    assert theirs.json()["output"]["passages"] == []


async def test_a_tenant_wide_cache_is_never_shared_with_another_tenant(
    gateway: Gateway, openai_server: OpenAIServer
) -> None:
    word = f"mesh-{RUN}"
    asked = {"input": word}
    async with gateway.client("acme") as acme, gateway.client("globex") as globex:
        first = (await acme.post("/v1/agents/assistant/skills/define", json=asked)).json()["output"]
        again = (await acme.post("/v1/agents/assistant/skills/define", json=asked)).json()["output"]
        other = (await globex.post("/v1/agents/assistant/skills/define", json=asked)).json()["output"]
    calls = [r for r in openai_server.requests if word in str(r["messages"])]
    assert not first.startswith("cached: ")
    assert again.startswith("cached: ")  # the same tenant, another conversation: from the cache
    assert not other.startswith("cached: ")  # another tenant: the model again
    assert len(calls) == 2


async def test_durable_tasks_are_submitted_awaited_and_canceled(gateway: Gateway) -> None:
    async with gateway.client() as client:
        submitted = await client.post(
            "/v1/agents/echo/skills/add/tasks",
            json={"input": {"a": 20, "b": 22}},
            headers={"Idempotency-Key": f"sum-{RUN}"},
        )
        assert submitted.status_code == 202
        task_id = submitted.json()["id"]
        assert submitted.headers["location"] == f"/v1/tasks/{task_id}"
        again = await client.post(
            "/v1/agents/echo/skills/add/tasks",
            json={"input": {"a": 20, "b": 22}},
            headers={"Idempotency-Key": f"sum-{RUN}"},
        )
        assert again.json()["id"] == task_id
        done = (await client.get(f"/v1/tasks/{task_id}", params={"wait": 5})).json()
        slow = (await client.post("/v1/agents/echo/skills/nap/tasks", json={"input": 30})).json()
        canceled = await client.post(f"/v1/tasks/{slow['id']}/cancel")
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert done["artifacts"][0]["parts"][0]["data"]["total"] == 42
    assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELED"


async def test_a_tenant_over_its_rate_gets_429_with_retry_after(gateway: Gateway) -> None:
    async with gateway.client(f"slow{RUN}") as client:
        responses = [await client.get("/v1/agents") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["RateLimit-Limit"] == "2"
    assert responses[1].headers["RateLimit-Remaining"] == "0"
    limited = _problem(responses[2], 429)
    assert limited["type"].endswith("/rate-limited")
    assert int(responses[2].headers["Retry-After"]) >= 1


async def test_usage_counts_requests_per_tenant(gateway: Gateway) -> None:
    async with gateway.client("globex") as client:
        before = (await client.get("/v1/usage")).json()
        await client.post("/v1/agents/echo/skills/shout", json={"input": "hi"})
        after = (await client.get("/v1/usage")).json()
    assert after["tenant"] == "globex"
    assert after["requests"] == before["requests"] + 2
    assert after["shared"] is True


async def test_health_readiness_and_the_openapi_document(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        document = await client.get("/openapi.json")
        docs = await client.get("/docs")
        missing = await client.get("/no/such/path")
    assert health.json() == {"status": "ok"}
    assert ready.json()["ready"] is True
    assert ready.json()["checks"]["redis"] == "up"
    assert "/v1/conversations/{cid}/messages" in document.json()["paths"]
    assert "Turn" in document.json()["components"]["schemas"]
    assert "swagger-ui" in docs.text
    _problem(missing, 404)


async def test_many_concurrent_requests_are_all_answered(gateway: Gateway) -> None:
    async with gateway.client("globex") as client:
        replies = await asyncio.gather(
            *(client.post("/v1/agents/echo/skills/shout", json={"input": f"n{i}"}) for i in range(20))
        )
    assert sorted(r.json()["output"] for r in replies) == sorted(f"N{i}" for i in range(20))


async def test_the_mesh_keeps_working_for_direct_callers(gateway: Gateway, mesh: Mesh) -> None:
    assert await mesh.caller("acme").call("echo", "shout", "direct", str) == "DIRECT"
