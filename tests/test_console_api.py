"""The routes the console is built on: conversation pages, the hand-off queue and a person's reply,
dead letters, task lists, usage hour by hour; each scoped to the key's tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest

from agents import Mesh
from agents.handoff import HANDOFF_KEY, Handoff
from agents.redisstore import RedisStore
from agents.settings import AgentSettings
from bus import EmbeddedNats, new_id, subjects
from bus.client import Bus
from gateway.keys import ApiKeys
from gateway.settings import GatewaySettings
from tests.gateway_server import serve_gateway
from tests.openai_server import OpenAIServer
from tests.processes import agent_process
from tests.redis_server import RedisServer

RUN = new_id()[:6]
ACME, GLOBEX = f"acme{RUN}", f"globex{RUN}"


class Console:
    def __init__(self, url: str, keys: dict[str, str], plain: str) -> None:
        self.url = url
        self.keys = keys
        self.plain = plain  # a gateway without Redis

    def client(self, tenant: str = ACME, url: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=url or self.url, headers={"Authorization": f"Bearer {self.keys[tenant]}"}, timeout=20
        )


@pytest.fixture(scope="module")
async def console(
    nats_server: EmbeddedNats, redis_server: RedisServer, openai_server: OpenAIServer
) -> AsyncIterator[Console]:
    env = {"HIVEWIRE_REDIS_URL": redis_server.url, "HIVEWIRE_LLM_BASE_URL": openai_server.url}
    values: dict[str, Any] = {
        "_env_file": None,
        "nats_url": nats_server.url,
        "gateway_agent": "assistant",
        "gateway_skill": "chat",
        "gateway_timeout": 5.0,
        "gateway_key_cache": 0,
        "gateway_cors_origins": {ACME: ["http://shop.test"], GLOBEX: ["http://globex.test"]},
    }
    async with (
        agent_process(nats_server.url, "tests.zoo:assistant", **env),
        agent_process(nats_server.url, "tests.zoo:jobs"),
        serve_gateway(GatewaySettings(**values, redis_url=redis_server.url)) as url,
        serve_gateway(GatewaySettings(**values)) as plain,
    ):
        bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=nats_server.url))  # type: ignore[call-arg]
        keys = await ApiKeys.open(bus)
        made = {tenant: (await keys.create(tenant))[0] for tenant in (ACME, GLOBEX)}
        made["widget"] = (await keys.create(ACME, scope="widget"))[0]
        await bus.close()
        yield Console(url, made, plain)


async def test_a_key_tells_its_tenant(console: Console) -> None:
    async with console.client() as client:
        assert (await client.get("/v1/me")).json() == {"tenant": ACME}


async def test_conversations_are_paged_newest_activity_first_and_only_the_tenants(
    console: Console, redis_server: RedisServer, openai_server: OpenAIServer
) -> None:
    openai_server.reply("big", "Sure.")
    async with console.client() as client:
        made = [(await client.post("/v1/conversations")).json()["id"] for _ in range(3)]
        turn = await client.post(f"/v1/conversations/{made[0]}/messages", json={"text": "Hello   there"})
        assert turn.status_code == 200, turn.text
        first = (await client.get("/v1/conversations", params={"limit": 2})).json()
        rest = (
            await client.get("/v1/conversations", params={"limit": 2, "cursor": first["nextCursor"]})
        ).json()
        bad = await client.get("/v1/conversations", params={"cursor": "not-a-cursor"})
        too_many = await client.get("/v1/conversations", params={"limit": 1000})
    # The one that just had a turn comes first, with its title and count; then newest created.
    assert [c["id"] for c in first["items"]] == [made[0], made[2]]
    assert (first["items"][0]["title"], first["items"][0]["turns"]) == ("Hello there", 1)
    assert [c["id"] for c in rest["items"]][:1] == [made[1]]
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/bad-cursor")
    assert too_many.status_code == 400
    async with console.client(GLOBEX) as other:
        assert (await other.get("/v1/conversations")).json()["items"] == []

    # The index is rebuilt from the records when Redis loses it, and without Redis the
    # records are read directly: the same page either way.
    store = RedisStore(redis_server.url)
    await store.run(
        lambda r: r.delete(subjects.conversation_index_key(ACME), subjects.conversation_index_marker(ACME)),
        None,
    )
    await store.close()
    for url in (console.url, console.plain):
        async with console.client(url=url) as client:
            again = (await client.get("/v1/conversations", params={"limit": 2})).json()
        assert [c["id"] for c in again["items"]] == [made[0], made[2]]


async def _events(
    client: httpx.AsyncClient, cid: str, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The conversation's events from its start, up to the first one ``until`` accepts."""
    found: list[dict[str, Any]] = []
    path = f"/v1/conversations/{cid}/events"
    async with client.stream("GET", path, params={"after": 0, "follow": "true"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(msgspec.json.decode(line[6:]))
                if until(found[-1]):
                    return found
    raise AssertionError(f"the events ended early: {found}")


def _ended(event: dict[str, Any]) -> bool:
    return "statusUpdate" in event and event["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


def _human(event: dict[str, Any]) -> bool:
    return "hivewire.human" in ((event.get("message") or {}).get("metadata") or {})


async def test_a_json_turn_leaves_its_question_and_outcome_in_the_conversations_events(
    console: Console, openai_server: OpenAIServer
) -> None:
    openai_server.reply("big", "Noted.")
    async with console.client() as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        await client.post(f"/v1/conversations/{cid}/messages", json={"text": "Remember me"})
        events = await _events(client, cid, _ended)
    assert events[0]["message"]["parts"][0]["text"] == "Remember me"
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert events[-1]["statusUpdate"]["status"]["message"]["parts"][0]["text"] == "Noted."


async def test_a_flagged_conversation_is_queued_and_a_persons_reply_joins_it(
    console: Console, mesh: Mesh
) -> None:
    async with console.client() as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        # What the desk's triage does with a turn it cannot resolve.
        await mesh.state(ACME, cid).put(
            HANDOFF_KEY, Handoff(reason="negative and unanswered", question="Where is my order?", at=1.0)
        )
        queued = (await client.get("/v1/handoffs")).json()
        async with console.client(GLOBEX) as other:
            assert (await other.get("/v1/handoffs")).json() == []
            stolen = await other.post(f"/v1/conversations/{cid}/replies", json={"text": "hi"})
        reply = await client.post(
            f"/v1/conversations/{cid}/replies", json={"text": "It ships today.", "author": "Dana"}
        )
        empty = await client.post(f"/v1/conversations/{cid}/replies", json={"text": "  "})
        unknown = await client.post(f"/v1/conversations/{new_id()}/replies", json={"text": "hi"})
        still_open = (await client.get("/v1/handoffs")).json()
        done = (await client.get("/v1/handoffs", params={"status": "handled"})).json()
        bad = await client.get("/v1/handoffs", params={"status": "maybe"})
        history = (await client.get(f"/v1/conversations/{cid}/messages")).json()["messages"]
        events = await _events(client, cid, _human)
    mine = [item for item in queued if item["conversationId"] == cid]
    assert mine == [
        {
            "conversationId": cid,
            "handoff": {
                "reason": "negative and unanswered",
                "question": "Where is my order?",
                "at": 1.0,
                "status": "open",
                "handledBy": "",
                "handledAt": 0.0,
            },
        }
    ]
    assert stolen.status_code == 404
    assert reply.status_code == 201, reply.text
    assert (empty.status_code, unknown.status_code, bad.status_code) == (422, 404, 400)
    assert cid not in [item["conversationId"] for item in still_open]
    handled = next(item["handoff"] for item in done if item["conversationId"] == cid)
    assert (handled["status"], handled["handledBy"]) == ("handled", "Dana")
    assert history[-1] == {"role": "assistant", "content": "It ships today."}
    said = events[-1]["message"]
    assert (said["role"], said["parts"][0]["text"]) == ("ROLE_AGENT", "It ships today.")
    assert said["metadata"]["hivewire.human"] == {"author": "Dana"}


async def _wait_for(check: Any, what: str, seconds: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_dead_letters_are_listed_and_replayed_for_their_tenant_only(
    console: Console, mesh: Mesh
) -> None:
    async with console.client() as client, console.client(GLOBEX) as other:
        task = (await client.post("/v1/agents/jobs/skills/picky/tasks", json={"input": "key"})).json()

        async def parked() -> list[dict[str, Any]]:
            items = (await client.get("/v1/dead-letters", params={"agent": "jobs"})).json()["items"]
            return [item for item in items if item["taskId"] == task["id"]]

        (letter,) = await _wait_for(parked, "the dead letter")
        assert (await other.get("/v1/dead-letters")).json()["items"] == []
        assert (await other.post(f"/v1/dead-letters/{letter['seq']}/replay")).status_code == 404
        # Fix what made it fail, then replay it: it runs to completion.
        await mesh.state(ACME, task["contextId"]).put("key", "present")
        replayed = await client.post(f"/v1/dead-letters/{letter['seq']}/replay")
        again = await client.post(f"/v1/dead-letters/{letter['seq']}/replay")
        done = (await client.get(f"/v1/tasks/{task['id']}", params={"wait": 10})).json()
        bad = await client.get("/v1/dead-letters", params={"limit": "many"})
    assert letter["deliveries"] == 3
    assert letter["replayable"] is True
    assert "LookupError" in letter["reason"]
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert again.status_code == 404
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert bad.status_code == 400


async def test_tasks_are_listed_with_filters_for_their_tenant_only(console: Console) -> None:
    async with console.client() as client:
        made = [
            (await client.post("/v1/agents/jobs/skills/work/tasks", json={"input": {"n": n}})).json()["id"]
            for n in range(3)
        ]
        for task_id in made:
            await client.get(f"/v1/tasks/{task_id}", params={"wait": 10})
        done = (await client.get("/v1/tasks", params={"state": "completed", "limit": 200})).json()
        page = (await client.get("/v1/tasks", params={"limit": 2, "agent": "jobs"})).json()
        following = (
            await client.get("/v1/tasks", params={"limit": 2, "agent": "jobs", "cursor": page["nextCursor"]})
        ).json()
        bad = await client.get("/v1/tasks", params={"state": "sleeping"})
    assert set(made) <= {task["id"] for task in done["items"]}
    assert len(page["items"]) == 2
    assert not {t["id"] for t in page["items"]} & {t["id"] for t in following["items"]}
    assert bad.status_code == 400
    async with console.client(GLOBEX) as other:
        assert (await other.get("/v1/tasks")).json()["items"] == []


async def test_usage_is_kept_hour_by_hour(console: Console) -> None:
    async with console.client(GLOBEX) as client:
        for _ in range(3):
            await client.get("/v1/me")
        history = (await client.get("/v1/usage/history", params={"hours": 3})).json()
        bad = await client.get("/v1/usage/history", params={"hours": 0})
    assert history["tenant"] == GLOBEX
    assert [hour["hour"].endswith(":00:00Z") for hour in history["hours"]] == [True] * 3
    assert history["hours"][-1]["requests"] >= 3
    assert history["shared"] is True
    assert bad.status_code == 400


async def test_the_console_and_its_assets_are_served_from_the_package(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as client:
        index = await client.get("/")
        again = await client.get("/console")
        module = await client.get("/console/static/app.js")
        widget = await client.get("/widget.js")
        docs = await client.get("/docs")
        swagger = await client.get("/console/vendor/swagger-ui/swagger-ui-bundle.js")
        example = await client.get("/console/examples/widget.html")
        missing = await client.get("/console/static/nothing.js")
    assert index.status_code == again.status_code == 200
    assert '<script type="module" src="/console/static/app.js">' in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert module.headers["content-type"].startswith("text/javascript")
    assert "document.currentScript" in widget.text
    assert "/console/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert swagger.status_code == 200
    assert f'src="{console.url}/widget.js"' in example.text
    assert missing.status_code == 404


async def test_cross_origin_calls_are_allowed_per_tenant(console: Console) -> None:
    shop, elsewhere = {"Origin": "http://shop.test"}, {"Origin": "http://evil.test"}
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with console.client() as client:
        allowed = await client.options("/v1/conversations", headers={**shop, **preflight})
        refused = await client.options("/v1/conversations", headers={**elsewhere, **preflight})
        made = await client.post("/v1/conversations", headers=shop)
        # globex.test is allowed, but for the other tenant: acme's key is refused from there.
        foreign = await client.post("/v1/conversations", headers={"Origin": "http://globex.test"})
        asset = await client.get("/console/static/sse.js", headers=elsewhere)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://shop.test"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert made.status_code == 201
    assert made.headers["access-control-allow-origin"] == "http://shop.test"
    assert "Location" in made.headers["access-control-expose-headers"]
    assert foreign.status_code == 403
    assert foreign.json()["type"].endswith("/origin-not-allowed")
    assert asset.headers["access-control-allow-origin"] == "*"


async def test_a_widget_key_may_only_hold_conversations(
    console: Console, openai_server: OpenAIServer
) -> None:
    openai_server.reply("big", "Hi!")
    async with console.client("widget") as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        turn = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "Hello"})
        history = await client.get(f"/v1/conversations/{cid}/messages")
        refused = [
            await client.get(path)
            for path in ("/v1/conversations", "/v1/handoffs", "/v1/dead-letters", "/v1/usage", "/v1/agents")
        ]
    assert turn.status_code == 200, turn.text
    assert history.status_code == 200
    assert {r.status_code for r in refused} == {403}
    assert refused[0].json()["type"].endswith("/key-scope")


async def test_the_console_routes_are_in_the_openapi_document(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"get", "post"} <= set(paths["/v1/conversations"])
    for path in (
        "/v1/conversations/{cid}/replies",
        "/v1/handoffs",
        "/v1/dead-letters",
        "/v1/dead-letters/{seq}/replay",
        "/v1/tasks",
        "/v1/usage/history",
        "/v1/me",
        "/v1/traces/{trace_id}",
    ):
        assert path in paths, path
