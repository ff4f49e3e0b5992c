"""A2A v0.3 on the JSON-RPC endpoint: the a2a-sdk's v0.3 client transport, raw v0.3 JSON, cards, errors."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.client.card_resolver import parse_agent_card
from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as v03
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from bus import EmbeddedNats, new_id, subjects
from gateway.a2a.cards import TENANT_EXTENSION
from gateway.a2a.v03 import models as wire
from gateway.a2a.v03.convert import to_send_params
from gateway.a2a.v03.convert import v03_message as to_v03_message
from gateway.settings import TenantLimits
from tests.redis_server import RedisServer
from tests.test_a2a_endpoint import Gateway, a2a_gateway, send, send_request, until_state
from tests.webhooks import webhook_receiver

RUN = new_id()[:8]
BROKE = f"broke{RUN}"


@pytest.fixture(scope="module")
async def gateway(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Gateway]:
    tenants = ("acme", f"push{RUN}", BROKE)
    limits = {BROKE: TenantLimits(daily_tokens=10)}
    async with a2a_gateway(nats_server, redis_server, tenants, gateway_tenant_limits=limits) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def v03_client(url: str, key: str, agent: str, *, streaming: bool = False) -> AsyncIterator[Client]:
    """A v0.3 client as the SDK makes one: from the card read as v0.3 (``url``, ``preferredTransport``)."""
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=20)
    raw = (await http.get(f"{url}/a2a/agents/{agent}/.well-known/agent-card.json")).json()
    card = conversions.to_core_agent_card(v03.AgentCard.model_validate(raw))
    config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=["JSONRPC"])
    client = ClientFactory(config).create(card)
    try:
        yield client
    finally:
        await client.close()
        await http.aclose()


def rpc(method: str, params: object = None, request_id: object = 1) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method}
    return body if params is None else {**body, "params": params}


def v03_message(text: str, skill: str = "shout", **fields: Any) -> dict[str, Any]:
    """A v0.3 user message, as raw JSON."""
    return {
        "kind": "message",
        "messageId": new_id(),
        "role": "user",
        "parts": [{"kind": "text", "text": text}],
        "metadata": {"skill": skill},
        **fields,
    }


async def sse_results(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) async for line in response.aiter_lines() if line.startswith("data: ")]


async def test_a_v03_client_finds_the_v03_interface_in_the_card_and_runs_a_task(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        raw = (await http.get(f"{gateway.url}/a2a/agents/echo/.well-known/agent-card.json")).json()
    legacy = conversions.to_core_agent_card(v03.AgentCard.model_validate(raw))
    chosen = ClientFactory._find_best_interface(list(legacy.supported_interfaces), ["JSONRPC"])
    async with v03_client(gateway.url, gateway.keys["acme"], "echo") as client:
        task = await send(client, send_request("hello", "shout"))
        read = await client.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=new_id()))
    assert chosen is not None
    assert (chosen.url, chosen.protocol_version) == (f"{gateway.url}/a2a/agents/echo", "0.3.0")
    assert task.status.state == read.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == read.artifacts[0].parts[0].text == "HELLO"
    assert [m.parts[0].text for m in read.history] == ["hello"]


async def test_the_card_reads_as_v1_for_v1_clients_and_as_v03_for_v03_clients(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        raw = (await http.get(f"{gateway.url}/a2a/agents/echo/.well-known/agent-card.json")).json()
    url = f"{gateway.url}/a2a/agents/echo"
    current = parse_agent_card(json.loads(json.dumps(raw)))
    best = ClientFactory._find_best_interface(list(current.supported_interfaces), ["JSONRPC"])
    legacy = v03.AgentCard.model_validate(raw)
    assert [(i.protocol_binding, i.protocol_version) for i in current.supported_interfaces] == [
        ("JSONRPC", "1.0"),
        ("HTTP+JSON", "1.0"),
        ("JSONRPC", "0.3"),
    ]
    assert best is not None
    assert best.protocol_version == "1.0"
    assert current.capabilities.extended_agent_card
    assert current.security_schemes["apiKey"].http_auth_security_scheme.scheme == "Bearer"
    assert (legacy.url, legacy.preferred_transport, legacy.protocol_version) == (url, "JSONRPC", "0.3.0")
    assert [(i.url, i.transport) for i in legacy.additional_interfaces or []] == [(url, "JSONRPC")]
    assert legacy.supports_authenticated_extended_card is True
    scheme = legacy.security_schemes["apiKey"].root if legacy.security_schemes else None
    assert isinstance(scheme, v03.HTTPAuthSecurityScheme)
    assert scheme.scheme == "Bearer"
    assert legacy.security == [{"apiKey": []}]
    assert legacy.capabilities.streaming
    assert legacy.capabilities.push_notifications
    assert all(skill.tags for skill in legacy.skills)


async def test_v03_results_are_v03_json(gateway: Gateway) -> None:
    async with gateway.http() as http:
        sent = await http.post("/a2a/agents/echo", json=rpc("message/send", {"message": v03_message("hi")}))
        task_id = sent.json()["result"]["id"]
        got = await http.post("/a2a", json=rpc("tasks/get", {"id": task_id, "historyLength": 0}, "g"))
        data = {"kind": "data", "data": {"value": 2}, "metadata": {"data_part_compat": True}}
        numbers = v03_message("", "add")
        numbers["parts"] = [{"kind": "data", "data": {"a": 2, "b": 3}}]
        added = await http.post("/a2a/agents/echo", json=rpc("message/send", {"message": numbers}))
        upto = v03_message("", "count")
        upto["parts"] = [data]
        odd = await http.post("/a2a/agents/echo", json=rpc("message/send", {"message": upto}))
        timed = await http.post(
            "/a2a/agents/echo", json=rpc("message/send", {"message": v03_message("", "deadline")})
        )
        card = await http.post("/a2a/agents/echo", json=rpc("agent/getAuthenticatedExtendedCard"))
    result = v03.SendMessageResponse.model_validate(sent.json()).root
    fetched = v03.GetTaskResponse.model_validate(got.json()).root
    extended = v03.GetAuthenticatedExtendedCardResponse.model_validate(card.json()).root
    assert isinstance(result, v03.SendMessageSuccessResponse)
    assert isinstance(result.result, v03.Task)
    assert sent.json()["result"]["kind"] == "task"
    assert result.result.status.state == v03.TaskState.completed
    assert result.result.artifacts
    assert result.result.artifacts[0].parts[0].root.text == "HI"
    assert result.result.history
    assert result.result.history[0].role == v03.Role.user
    assert isinstance(fetched, v03.GetTaskSuccessResponse)
    assert fetched.id == "g"
    assert fetched.result.id == task_id
    assert len(fetched.result.history or []) == 1  # historyLength 0: all of it, as v0.3 had it
    assert added.json()["result"]["status"]["state"] == "completed"
    # A value that is not an object travels as the a2a-sdk wraps it, both ways.
    assert odd.json()["result"]["status"]["state"] == "completed"
    assert odd.json()["result"]["history"][0]["parts"][0] == data
    remaining = timed.json()["result"]["artifacts"][0]["parts"][0]
    assert (remaining["kind"], remaining["metadata"]) == ("data", {"data_part_compat": True})
    assert isinstance(remaining["data"]["value"], float)
    assert isinstance(extended, v03.GetAuthenticatedExtendedCardSuccessResponse)
    assert any(e.uri == TENANT_EXTENSION for e in extended.result.capabilities.extensions or [])


async def test_a_streamed_message_sends_v03_events_the_last_one_final(gateway: Gateway) -> None:
    upto = v03_message("", "count")
    upto["parts"] = [{"kind": "data", "data": {"value": 3}, "metadata": {"data_part_compat": True}}]
    async with v03_client(gateway.url, gateway.keys["acme"], "echo", streaming=True) as client:
        events = [event async for event in client.send_message(send_request(3, "count"))]
    async with (
        gateway.http() as http,
        http.stream("POST", "/a2a/agents/echo", json=rpc("message/stream", {"message": upto})) as response,
    ):
        raw = await sse_results(response)
    parsed = [v03.SendStreamingMessageResponse.model_validate(event).root for event in raw]
    results = [event.result for event in parsed if isinstance(event, v03.SendStreamingMessageSuccessResponse)]
    assert events[0].HasField("task")
    chunks = [e.artifact_update.artifact.parts[0].text for e in events if e.HasField("artifact_update")]
    assert "".join(chunks) == "1 2 3 "
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(results) == len(raw)
    assert next(event["result"]["kind"] for event in raw) == "task"
    assert {event["result"]["kind"] for event in raw[1:]} <= {"status-update", "artifact-update"}
    last = results[-1]
    assert isinstance(last, v03.TaskStatusUpdateEvent)
    assert (last.final, last.status.state) == (True, v03.TaskState.completed)
    assert not any(r.final for r in results[:-1] if isinstance(r, v03.TaskStatusUpdateEvent))
    assert any(isinstance(r, v03.TaskArtifactUpdateEvent) and r.append is not None for r in results)


async def test_a_running_task_is_canceled_over_v03(gateway: Gateway) -> None:
    async with v03_client(gateway.url, gateway.keys["acme"], "jobs") as client:
        started = await send(client, send_request(30, "pause", now=True))
        await until_state(client, started.id, TaskState.TASK_STATE_WORKING)
        canceled = await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id=new_id()))
    assert started.status.state == TaskState.TASK_STATE_SUBMITTED  # blocking: false
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED


async def test_a_task_asking_for_input_ends_the_stream_final_and_is_continued(gateway: Gateway) -> None:
    async with gateway.http() as http:
        params = {"message": v03_message("Lisbon", "book")}
        async with http.stream("POST", "/a2a/agents/jobs", json=rpc("message/stream", params)) as response:
            raw = await sse_results(response)
        task_id = raw[0]["result"]["id"]
        more = {"message": v03_message("Porto", "book", taskId=task_id)}
        done = await http.post("/a2a/agents/jobs", json=rpc("message/send", more))
    assert raw[-1]["result"]["status"]["state"] == "input-required"
    assert raw[-1]["result"]["final"] is True
    assert done.json()["result"]["status"]["state"] == "completed"
    assert done.json()["result"]["artifacts"][-1]["parts"][0]["text"] == "booked: Lisbon -> Porto"


async def test_a_resubscription_follows_a_task_to_its_end(gateway: Gateway) -> None:
    async with v03_client(gateway.url, gateway.keys["acme"], "jobs", streaming=True) as client:
        started = await send(client, send_request({"count": 3, "seconds": 0.2}, "progress", now=True))
        events = [event async for event in client.subscribe(SubscribeToTaskRequest(id=started.id))]
        with pytest.raises(UnsupportedOperationError):  # it ended: nothing to follow
            async for _ in client.subscribe(SubscribeToTaskRequest(id=started.id)):
                pass
        with pytest.raises(TaskNotFoundError):
            async for _ in client.subscribe(SubscribeToTaskRequest(id=new_id())):
                pass
    assert events[0].task.id == started.id
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_push_configs_are_set_read_listed_and_deleted_over_v03(gateway: Gateway) -> None:
    async with (
        webhook_receiver() as receiver,
        v03_client(gateway.url, gateway.keys[f"push{RUN}"], "jobs") as client,
        gateway.http(f"push{RUN}") as http,
    ):
        started = await send(client, send_request(0.5, "pause", now=True))
        config = TaskPushNotificationConfig(task_id=started.id, id="second", url=f"{receiver.url}/hook")
        config.authentication.scheme = "Bearer"
        config.authentication.credentials = "webhook-secret"
        created = await client.create_task_push_notification_config(config)
        default = {"url": f"{receiver.url}/default"}
        set_raw = await http.post(
            "/a2a/agents/jobs",
            json=rpc(
                "tasks/pushNotificationConfig/set", {"taskId": started.id, "pushNotificationConfig": default}
            ),
        )
        get_default = await http.post(
            "/a2a/agents/jobs", json=rpc("tasks/pushNotificationConfig/get", {"id": started.id})
        )
        fetched = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=started.id, id="second")
        )
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=started.id)
        )
        list_raw = await http.post(
            "/a2a/agents/jobs", json=rpc("tasks/pushNotificationConfig/list", {"id": started.id})
        )
        await until_state(client, started.id, TaskState.TASK_STATE_COMPLETED)
        calls = await receiver.until(4)
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=started.id, id="second")
        )
        ref = {"id": started.id, "pushNotificationConfigId": started.id}
        delete_raw = await http.post("/a2a/agents/jobs", json=rpc("tasks/pushNotificationConfig/delete", ref))
        with pytest.raises(TaskNotFoundError):
            await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=started.id, id="second")
            )
        with pytest.raises(InvalidParamsError):
            await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=started.id, url="http://169.254.169.254/latest")
            )
    assert created.id == fetched.id == "second"
    assert fetched.authentication.scheme == "Bearer"
    set_result = v03.SetTaskPushNotificationConfigResponse.model_validate(set_raw.json()).root
    assert isinstance(set_result, v03.SetTaskPushNotificationConfigSuccessResponse)
    assert set_result.result.push_notification_config.id == started.id  # no id: the task's default
    default_result = v03.GetTaskPushNotificationConfigResponse.model_validate(get_default.json()).root
    assert isinstance(default_result, v03.GetTaskPushNotificationConfigSuccessResponse)
    assert default_result.result.push_notification_config.url == f"{receiver.url}/default"
    assert len(listed.configs) == 2
    assert isinstance(
        v03.ListTaskPushNotificationConfigResponse.model_validate(list_raw.json()).root,
        v03.ListTaskPushNotificationConfigSuccessResponse,
    )
    assert delete_raw.json() == {"jsonrpc": "2.0", "id": 1, "result": None}
    v03.DeleteTaskPushNotificationConfigResponse.model_validate(delete_raw.json())
    hook = [call for call in calls if call.path == "/hook"]
    assert hook
    assert all(call.headers["authorization"] == "Bearer webhook-secret" for call in hook)


async def test_the_extended_card_over_v03_names_the_callers_tenant(gateway: Gateway) -> None:
    async with v03_client(gateway.url, gateway.keys["acme"], "echo") as client:
        card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
    extension = next(e for e in card.capabilities.extensions if e.uri == TENANT_EXTENSION)
    assert extension.params["tenant"] == "acme"


async def test_v03_errors_carry_v03_codes(gateway: Gateway) -> None:
    bad_file = v03_message("x")
    bad_file["parts"] = [{"kind": "file", "file": {"uri": "https://x.example/a", "bytes": "aGk="}}]
    untagged = v03_message("x")
    untagged["parts"] = [{"text": "no kind"}]
    from_agent = v03_message("x", role="agent")
    cases = {
        "unknown_task": rpc("tasks/get", {"id": new_id()}),
        "odd_task_id": rpc("tasks/cancel", {"id": "a.b"}),
        "no_params": rpc("message/send"),
        "wrong_type": rpc("tasks/get", {"id": 5}),
        "untagged_part": rpc("message/send", {"message": untagged}),
        "both_file_forms": rpc("message/send", {"message": bad_file}),
        "from_agent": rpc("message/send", {"message": from_agent}),
        "no_config_id": rpc("tasks/pushNotificationConfig/delete", {"id": new_id()}),
        "unknown_method": rpc("tasks/list", {}),
        "not_v03": rpc("GetTask", {"id": new_id()}),
    }
    async with gateway.http() as http:
        answers = {
            name: (await http.post("/a2a", json=body, headers={"A2A-Version": "0.3"})).json()
            for name, body in cases.items()
        }
        claims_v1 = await http.post(
            "/a2a", json=rpc("message/send", {"message": v03_message("x")}), headers={"A2A-Version": "1.0"}
        )
        patch = await http.post(
            "/a2a", json=rpc("tasks/get", {"id": new_id()}), headers={"A2A-Version": "0.3.0"}
        )
        older = await http.post(
            "/a2a", json=rpc("tasks/get", {"id": new_id()}), headers={"A2A-Version": "0.2"}
        )
        rest = await http.get(f"/a2a/tasks/{new_id()}", headers={"A2A-Version": "0.3"})
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        no_key = await anonymous.post("/a2a", json=rpc("tasks/get", {"id": "x"}))
    codes = {name: answer["error"]["code"] for name, answer in answers.items()}
    assert codes == {
        "unknown_task": -32001,
        "odd_task_id": -32001,
        "no_params": -32602,
        "wrong_type": -32602,
        "untagged_part": -32602,
        "both_file_forms": -32602,
        "from_agent": -32602,
        "no_config_id": -32602,
        "unknown_method": -32601,
        "not_v03": -32009,
    }
    for answer in answers.values():
        assert isinstance(v03.JSONRPCErrorResponse.model_validate(answer), v03.JSONRPCErrorResponse)
    assert "`message`" in answers["no_params"]["error"]["message"]
    assert "bytes or uri" in answers["both_file_forms"]["error"]["message"]
    assert "'user' messages" in answers["from_agent"]["error"]["message"]
    assert "an A2A 1.0 method" in answers["not_v03"]["error"]["message"]
    assert claims_v1.json()["error"]["code"] == -32009
    assert "message/send" in claims_v1.json()["error"]["message"]
    assert patch.json()["error"]["code"] == -32001  # 0.3.0 is 0.3
    assert older.json()["error"]["code"] == -32009
    assert rest.status_code == 400  # v0.3 is served over JSON-RPC only
    assert no_key.status_code == 401


async def test_v03_messages_spend_the_tenants_token_budget_like_v1_ones(
    gateway: Gateway, redis_server: RedisServer
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.set(subjects.token_budget_key(BROKE, time.strftime("%Y%m%d", time.gmtime())), 1000)
    await client.aclose()
    async with gateway.http(BROKE) as http:
        sent = await http.post("/a2a", json=rpc("message/send", {"message": v03_message("x")}))
        streamed = await http.post("/a2a", json=rpc("message/stream", {"message": v03_message("x")}))
        read = await http.post("/a2a", json=rpc("tasks/get", {"id": new_id()}))
    assert (sent.status_code, streamed.status_code) == (429, 429)
    assert sent.json()["type"].endswith("/token-budget-exhausted")
    assert read.json()["error"]["code"] == -32001  # reading spends nothing


async def test_tasks_are_shared_between_generations(gateway: Gateway) -> None:
    async with gateway.http() as http:
        sent = await http.post("/a2a", json=rpc("message/send", {"message": v03_message("both")}))
        task_id = sent.json()["result"]["id"]
        as_v1 = await http.post("/a2a", json=rpc("GetTask", {"id": task_id}))
    task = as_v1.json()["result"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0] == {"text": "BOTH"}


def test_file_parts_travel_both_ways_unchanged() -> None:
    sent = {
        "kind": "message",
        "messageId": "m-1",
        "role": "user",
        "parts": [
            {"kind": "file", "file": {"bytes": "aGk=", "mimeType": "text/plain", "name": "hi.txt"}},
            {"kind": "file", "file": {"uri": "https://files.example/a.pdf"}, "metadata": {"k": 1}},
        ],
    }
    params = msgspec.json.decode(msgspec.json.encode({"message": sent}), type=wire.MessageSendParams)
    message = to_send_params(params).message
    back = msgspec.json.decode(msgspec.json.encode(to_v03_message(message)))
    assert (message.parts[0].raw, message.parts[0].filename, message.parts[0].media_type) == (
        b"hi",
        "hi.txt",
        "text/plain",
    )
    assert message.parts[1].url == "https://files.example/a.pdf"
    assert back == sent
    v03.Message.model_validate(back)


async def test_a_resubscription_resumes_after_the_last_event_seen_and_notifications_get_no_body(
    gateway: Gateway,
) -> None:
    async with gateway.http() as http:
        params = {"message": v03_message("", "progress"), "configuration": {"blocking": False}}
        params["message"]["parts"] = [{"kind": "data", "data": {"count": 4, "seconds": 0.2}}]
        started = (await http.post("/a2a/agents/jobs", json=rpc("message/send", params))).json()["result"]
        body = rpc("tasks/resubscribe", {"id": started["id"]})
        async with http.stream("POST", "/a2a/agents/jobs", json=body) as response:
            seen = [line async for line in response.aiter_lines() if line.startswith("id: ")]
        replay = await http.post("/a2a/agents/jobs", json=body, headers={"Last-Event-ID": seen[1][4:]})
        notification = {"jsonrpc": "2.0", "method": "tasks/get", "params": {"id": started["id"]}}
        quiet = await http.post("/a2a/agents/jobs", json=notification)
    replayed = [line for line in replay.text.splitlines() if line.startswith("id: ")]
    assert started["status"]["state"] == "submitted"
    assert replayed == seen[2:]
    assert (quiet.status_code, quiet.content) == (204, b"")
