"""The A2A endpoint through the official a2a-sdk client, on both bindings: every operation, cards, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf import json_format, struct_pb2

from bus import EmbeddedNats, new_id
from gateway.a2a.cards import NATS_BINDING, TENANT_EXTENSION
from gateway.settings import GatewaySettings
from tests.gateway_server import api_keys, free_port, serve_gateway
from tests.processes import agent_processes, gateway_process
from tests.redis_server import RedisServer
from tests.webhooks import webhook_receiver

RUN = new_id()[:8]
BINDINGS = ["JSONRPC", "HTTP+JSON"]


class Gateway:
    def __init__(self, url: str, keys: dict[str, str], settings: GatewaySettings) -> None:
        self.url = url
        self.keys = keys
        self.settings = settings

    def http(self, tenant: str = "acme") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[tenant]}"}, timeout=20
        )


@contextlib.asynccontextmanager
async def a2a_gateway(
    nats_server: EmbeddedNats, redis_server: RedisServer, tenants: Iterable[str], **settings: Any
) -> AsyncIterator[Gateway]:
    """The gateway, with the echo and jobs agents in processes of their own and a key for each of ``tenants``.

    ``settings`` go on top of what the A2A tests share: echo's ``shout`` by
    default, keys read anew on each request, quick push retries to loopback.
    """
    served = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent="echo",
        gateway_skill="shout",
        gateway_timeout=10.0,
        gateway_key_cache=0,
        gateway_push_allowed_hosts=["127.0.0.1"],
        gateway_push_retry_delay=0.05,
        gateway_push_attempts=3,
        **settings,
    )
    async with (
        agent_processes(nats_server.url, ("tests.zoo:echo", {}), ("tests.zoo:jobs", {})),
        serve_gateway(served) as url,
    ):
        yield Gateway(url, await api_keys(nats_server.url, *tenants), served)


@pytest.fixture(scope="module")
async def gateway(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Gateway]:
    named = ("list", "listrest", "push", "pushrest", "sub", "other")
    tenants = ("acme", *(f"{name}{RUN}" for name in named))
    async with a2a_gateway(
        nats_server, redis_server, tenants, gateway_nats_public_url=nats_server.url
    ) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def a2a_client(
    url: str, key: str, agent: str, *, binding: str = "JSONRPC", streaming: bool = False
) -> AsyncIterator[Client]:
    """The official client, as an application would make it: from the agent's card."""
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=20)
    config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding])
    client = await ClientFactory(config).create_from_url(f"{url}/a2a/agents/{agent}")
    try:
        yield client
    finally:
        await client.close()
        await http.aclose()


def send_request(
    value: object,
    skill: str,
    *,
    task_id: str = "",
    context_id: str = "",
    now: bool = False,
    push: TaskPushNotificationConfig | None = None,
) -> SendMessageRequest:
    """A user message for ``skill``: text, or any other JSON value as a data part."""
    metadata = struct_pb2.Struct()
    metadata.update({"skill": skill})
    if isinstance(value, str):
        part = Part(text=value)
    else:
        part = Part(data=json_format.ParseDict(value, struct_pb2.Value()))
    message = Message(
        message_id=new_id(),
        role=Role.ROLE_USER,
        parts=[part],
        metadata=metadata,
        task_id=task_id,
        context_id=context_id,
    )
    configuration = SendMessageConfiguration(return_immediately=now)
    if push is not None:
        configuration.task_push_notification_config.CopyFrom(push)
    return SendMessageRequest(message=message, configuration=configuration)


async def send(client: Client, request: SendMessageRequest) -> Task:
    """Send a message and return the task (not streaming: the only event; streaming: the first)."""
    async for event in client.send_message(request):
        return event.task
    raise AssertionError("no event")


async def until_state(client: Client, task_id: str, state: int, *, within: float = 10.0) -> Task:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        task = await client.get_task(GetTaskRequest(id=task_id))
        if task.status.state == state or loop.time() > deadline:
            return task
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_message_runs_as_a_task_and_the_task_can_be_read(gateway: Gateway, binding: str) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "echo", binding=binding) as client:
        task = await send(client, send_request("hello", "shout"))
        trimmed = await client.get_task(GetTaskRequest(id=task.id, history_length=0))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=new_id()))
        with pytest.raises(TaskNotFoundError):  # no task can have such an id
            await client.get_task(GetTaskRequest(id="a.b*c"))
        with pytest.raises(InvalidParamsError):
            await client.get_task(GetTaskRequest(id=task.id, history_length=-1))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == "HELLO"
    assert len(task.history) == 1
    assert (trimmed.id, len(trimmed.history)) == (task.id, 0)


async def test_two_tenants_sending_the_same_message_id_get_a_task_each(gateway: Gateway) -> None:
    mine, theirs = send_request("mine", "shout"), send_request("theirs", "shout")
    theirs.message.message_id = mine.message.message_id
    async with (
        a2a_client(gateway.url, gateway.keys["acme"], "echo") as acme,
        a2a_client(gateway.url, gateway.keys[f"other{RUN}"], "echo") as other,
    ):
        first = await send(acme, mine)
        second = await send(other, theirs)
        again = await send(acme, mine)  # the same tenant's repeat: the same task, run once
    assert first.id != second.id
    assert again.id == first.id
    assert first.status.state == second.status.state == TaskState.TASK_STATE_COMPLETED
    assert (first.artifacts[0].parts[0].text, second.artifacts[0].parts[0].text) == ("MINE", "THEIRS")


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_streamed_message_sends_the_task_then_its_events_to_the_end(
    gateway: Gateway, binding: str
) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "echo", binding=binding, streaming=True) as c:
        events = [event async for event in c.send_message(send_request(3, "count"))]
    assert events[0].HasField("task")
    chunks = [e.artifact_update.artifact.parts[0].text for e in events if e.HasField("artifact_update")]
    assert "".join(chunks) == "1 2 3 "
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert {e.status_update.task_id for e in events if e.HasField("status_update")} == {events[0].task.id}


async def test_a_streamed_message_carries_what_the_agents_it_calls_stream(gateway: Gateway) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "echo", streaming=True) as c:
        events = [event async for event in c.send_message(send_request("mesh", "spell_via"))]
    # spell_via asks spell (another call, possibly another replica): its letters are this task's.
    chunks = [e.artifact_update.artifact.parts[0].text for e in events if e.HasField("artifact_update")]
    assert chunks == ["m", "e", "s", "h"]
    assert {e.artifact_update.task_id for e in events if e.HasField("artifact_update")} == {events[0].task.id}
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


@pytest.mark.parametrize(("binding", "tenant"), [("JSONRPC", "list"), ("HTTP+JSON", "listrest")])
async def test_tasks_are_listed_newest_first_in_pages_with_filters(
    gateway: Gateway, binding: str, tenant: str
) -> None:
    key = gateway.keys[f"{tenant}{RUN}"]
    async with a2a_client(gateway.url, key, "echo", binding=binding) as client:
        first = await send(client, send_request("one", "shout"))
        second = await send(client, send_request("two", "shout", context_id=first.context_id))
        third = await send(client, send_request({"a": 1, "b": "x"}, "add"))  # fails: not numbers
        page = await client.list_tasks(ListTasksRequest(page_size=2, history_length=0))
        rest = await client.list_tasks(ListTasksRequest(page_size=2, page_token=page.next_page_token))
        in_context = await client.list_tasks(ListTasksRequest(context_id=first.context_id))
        failed = await client.list_tasks(
            ListTasksRequest(status=TaskState.TASK_STATE_FAILED, include_artifacts=True)
        )
        with_artifacts = await client.list_tasks(ListTasksRequest(page_size=1, include_artifacts=True))
        for bad in (
            ListTasksRequest(page_size=0),
            ListTasksRequest(page_size=101),
            ListTasksRequest(history_length=-1),
            ListTasksRequest(page_token="not-a-token"),
        ):
            with pytest.raises(InvalidParamsError):
                await client.list_tasks(bad)
    assert [t.id for t in page.tasks] == [third.id, second.id]
    assert (page.total_size, page.page_size) == (3, 2)
    assert [len(t.history) for t in page.tasks] == [0, 0]
    assert not any(t.artifacts for t in page.tasks)
    assert [t.id for t in rest.tasks] == [first.id]
    assert rest.next_page_token == ""
    assert [t.id for t in in_context.tasks] == [second.id, first.id]
    assert [t.id for t in failed.tasks] == [third.id]
    assert failed.tasks[0].status.state == TaskState.TASK_STATE_FAILED
    assert with_artifacts.tasks[0].id == third.id


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_running_task_is_canceled_and_stays_canceled(gateway: Gateway, binding: str) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "jobs", binding=binding) as client:
        started = await send(client, send_request(30, "pause", now=True))
        working = await until_state(client, started.id, TaskState.TASK_STATE_WORKING)
        canceled = await client.cancel_task(CancelTaskRequest(id=started.id))
        await asyncio.sleep(0.3)
        later = await client.get_task(GetTaskRequest(id=started.id))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=started.id))
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id=new_id()))
    assert started.status.state == TaskState.TASK_STATE_SUBMITTED
    assert working.status.state == TaskState.TASK_STATE_WORKING
    assert canceled.status.state == later.status.state == TaskState.TASK_STATE_CANCELED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_task_that_asks_for_input_is_continued_by_a_message_naming_it(
    gateway: Gateway, binding: str
) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "jobs", binding=binding) as client:
        asking = await send(client, send_request("Lisbon", "book"))
        done = await send(client, send_request("Porto", "book", task_id=asking.id))
        with pytest.raises(UnsupportedOperationError):  # it ended
            await send(client, send_request("Faro", "book", task_id=asking.id))
        with pytest.raises(TaskNotFoundError):
            await send(client, send_request("Faro", "book", task_id=new_id()))
        with pytest.raises(InvalidParamsError):  # not the task's conversation
            await send(client, send_request("Faro", "book", task_id=asking.id, context_id=new_id()))
    assert asking.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert asking.status.message.parts[0].text == "Where should the trip from Lisbon go?"
    assert (done.id, done.context_id) == (asking.id, asking.context_id)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    assert done.artifacts[-1].parts[0].text == "booked: Lisbon -> Porto"
    assert [m.parts[0].text for m in done.history] == [
        "Lisbon",
        "Where should the trip from Lisbon go?",
        "Porto",
    ]


async def test_a_subscription_follows_a_task_from_another_gateway_process_after_a_reconnect(
    gateway: Gateway, nats_server: EmbeddedNats, redis_server: RedisServer
) -> None:
    key = gateway.keys[f"sub{RUN}"]
    port = free_port()
    env = {
        "HIVEWIRE_REDIS_URL": redis_server.url,
        "HIVEWIRE_GATEWAY_KEY_CACHE": "0",
        "HIVEWIRE_GATEWAY_PUSH": "false",  # the push test's events are for the other gateway
    }
    async with (
        gateway_process(nats_server.url, port, **env),
        a2a_client(gateway.url, key, "jobs", streaming=True) as first,
        a2a_client(f"http://127.0.0.1:{port}", key, "jobs", binding="HTTP+JSON", streaming=True) as second,
    ):
        started = await send(first, send_request({"count": 6, "seconds": 0.3}, "progress", now=True))
        before: list[Any] = []
        async for event in first.subscribe(SubscribeToTaskRequest(id=started.id)):
            before.append(event)
            if len(before) == 3:
                break  # the client drops
        after = [event async for event in second.subscribe(SubscribeToTaskRequest(id=started.id))]
        with pytest.raises(UnsupportedOperationError):  # it ended: nothing to follow
            async for _ in second.subscribe(SubscribeToTaskRequest(id=started.id)):
                pass
        with pytest.raises(TaskNotFoundError):
            async for _ in second.subscribe(SubscribeToTaskRequest(id=new_id())):
                pass
    assert before[0].HasField("task")
    assert after[0].HasField("task")
    assert after[0].task.id == started.id
    steps = [
        e.status_update.status.message.parts[0].text
        for e in after
        if e.HasField("status_update") and e.status_update.status.message.parts
    ]
    assert steps[-2] == "step 6 of 6"
    assert after[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    task = after[0].task
    seen = [e.status_update.status.message.parts[0].text for e in before[1:] if e.HasField("status_update")]
    assert task.status.state == TaskState.TASK_STATE_WORKING
    assert not set(seen) & set(steps[:-1]) or len(steps) <= 6


async def test_a_resumed_subscription_replays_the_events_after_the_last_one_seen(gateway: Gateway) -> None:
    async with (
        a2a_client(gateway.url, gateway.keys["acme"], "jobs") as client,
        gateway.http() as http,
    ):
        started = await send(client, send_request({"count": 4, "seconds": 0.2}, "progress", now=True))
        body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": started.id}}
        async with http.stream("POST", "/a2a/agents/jobs", json=body) as response:
            seen = [line async for line in response.aiter_lines() if line.startswith("id: ")]
        replay = await http.post("/a2a/agents/jobs", json=body, headers={"Last-Event-ID": seen[1][4:]})
    replayed = [line for line in replay.text.splitlines() if line.startswith("id: ")]
    assert replayed == seen[2:]


@pytest.mark.parametrize(("binding", "tenant"), [("JSONRPC", "push"), ("HTTP+JSON", "pushrest")])
async def test_push_configs_are_stored_and_events_are_posted_to_the_webhook(
    gateway: Gateway, binding: str, tenant: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        a2a_client(gateway.url, gateway.keys[f"{tenant}{RUN}"], "jobs", binding=binding) as client,
    ):
        receiver.failures = 1  # the first call fails: it is made again
        push = TaskPushNotificationConfig(url=f"{receiver.url}/hook", token="t-1")
        push.authentication.scheme = "Bearer"
        push.authentication.credentials = "webhook-secret"
        started = await send(client, send_request(0.5, "pause", now=True, push=push))
        other = TaskPushNotificationConfig(task_id=started.id, id="second", url=f"{receiver.url}/other")
        created = await client.create_task_push_notification_config(other)
        listed = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=started.id)
        )
        fetched = await client.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=started.id, id="second")
        )
        for _ in range(2):  # deleting twice is no error
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=started.id, id="second")
            )
        with pytest.raises(TaskNotFoundError):
            await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=started.id, id="second")
            )
        for url in ("http://169.254.169.254/latest", "ftp://127.0.0.1/hook", "http://10.1.2.3/hook"):
            with pytest.raises(InvalidParamsError):
                await client.create_task_push_notification_config(
                    TaskPushNotificationConfig(task_id=started.id, url=url)
                )
        await until_state(client, started.id, TaskState.TASK_STATE_COMPLETED)
        calls = await receiver.until(4)
    assert created.id == "second"
    assert fetched.url == f"{receiver.url}/other"
    assert len(listed.configs) == 2
    hook = [call for call in calls if call.path == "/hook"]
    assert all(call.headers["authorization"] == "Bearer webhook-secret" for call in hook)
    assert all(call.headers["x-a2a-notification-token"] == "t-1" for call in hook)
    states = [call.body["statusUpdate"]["status"]["state"] for call in hook]  # type: ignore[index]
    assert states[0] == states[1]  # the failed call, made again
    assert states[-1] == "TASK_STATE_COMPLETED"
    assert {call.body["statusUpdate"]["taskId"] for call in hook} == {started.id}  # type: ignore[index]


async def test_push_notifications_turned_off_are_refused_everywhere(gateway: Gateway) -> None:
    settings = gateway.settings.model_copy(update={"gateway_push": False})
    async with serve_gateway(settings) as url, a2a_client(url, gateway.keys["acme"], "echo") as client:
        task = await send(client, send_request("hi", "shout"))
        with pytest.raises(PushNotificationNotSupportedError):
            await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url="http://127.0.0.1:9/hook")
            )
        push = TaskPushNotificationConfig(url="http://127.0.0.1:9/hook")
        with pytest.raises(PushNotificationNotSupportedError):
            await send(client, send_request("hi", "shout", push=push))
        async with httpx.AsyncClient() as http:
            card = (await http.get(f"{url}/a2a/agents/echo/.well-known/agent-card.json")).json()
    assert card["capabilities"]["pushNotifications"] is False


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_extended_card_names_the_callers_tenant_and_limits(gateway: Gateway, binding: str) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "echo", binding=binding) as client:
        card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
    extension = next(e for e in card.capabilities.extensions if e.uri == TENANT_EXTENSION)
    assert extension.params["tenant"] == "acme"
    assert card.capabilities.extended_agent_card


async def test_cards_are_served_at_the_origin_and_below_every_interface_url(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        root = await http.get("/.well-known/agent-card.json")
        default = (await http.get("/a2a/.well-known/agent-card.json")).json()
        echo = (await http.get("/a2a/agents/echo/.well-known/agent-card.json")).json()
        etag = {"If-None-Match": root.headers["etag"]}
        cached = await http.get("/.well-known/agent-card.json", headers=etag)
        missing = await http.get("/a2a/agents/nobody/.well-known/agent-card.json")
        extended = await http.get("/a2a/agents/echo/extendedAgentCard")
    assert root.json() == default
    assert [(i["protocolBinding"], i["url"]) for i in echo["supportedInterfaces"]] == [
        ("JSONRPC", f"{gateway.url}/a2a/agents/echo"),
        ("HTTP+JSON", f"{gateway.url}/a2a/agents/echo"),
        ("JSONRPC", f"{gateway.url}/a2a/agents/echo"),  # A2A 0.3 (tests/test_a2a_v03.py)
        (NATS_BINDING, f"{gateway.settings.gateway_nats_public_url}/echo"),
    ]
    assert all(skill["tags"] for skill in echo["skills"])
    assert echo["capabilities"]["pushNotifications"] is True
    assert echo["capabilities"]["extendedAgentCard"] is True
    assert cached.status_code == 304
    assert missing.status_code == 404
    assert extended.status_code == 401  # the extended card is for authenticated callers


@pytest.mark.parametrize("binding", BINDINGS)
async def test_messages_a_client_may_not_send_are_invalid_params(gateway: Gateway, binding: str) -> None:
    async with a2a_client(gateway.url, gateway.keys["acme"], "echo", binding=binding) as client:
        empty = send_request("x", "shout")
        del empty.message.parts[:]
        from_agent = send_request("x", "shout")
        from_agent.message.role = Role.ROLE_AGENT
        negative = send_request("x", "shout")
        negative.configuration.history_length = -1
        unknown_skill = send_request("x", "nothing")
        for request in (empty, from_agent, negative, unknown_skill):
            with pytest.raises(InvalidParamsError):
                await send(client, request)


async def test_json_rpc_requests_are_answered_per_json_rpc(gateway: Gateway) -> None:
    def call(method: str, params: object, request_id: object = 7) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}

    async with gateway.http() as http:
        parse = await http.post("/a2a", content=b"{oops", headers={"content-type": "application/json"})
        invalid = await http.post("/a2a", json={"jsonrpc": "1.0", "id": "r-1", "method": "GetTask"})
        no_method = await http.post("/a2a", json={"jsonrpc": "2.0", "id": 3})
        batch = await http.post("/a2a", json=[call("GetTask", {"id": "x"}), call("GetTask", {"id": "y"})])
        no_id = {"jsonrpc": "2.0", "method": "GetTask", "params": {"id": "x"}}
        notification = await http.post("/a2a", json=no_id)
        unknown = await http.post("/a2a", json=call("Nope", {}))
        no_task = await http.post("/a2a", json=call("GetTask", {"id": "a.b"}, "q"))
        no_agent = await http.post("/a2a/agents/nobody", json=call("SendMessage", _message_params()))
        bad_params = await http.post("/a2a", json=call("SendMessage", {"message": 5}))
        old = await http.post("/a2a", json=call("GetTask", {"id": "x"}), headers={"A2A-Version": "0.3"})
        text = await http.post("/a2a", content=b"{}", headers={"content-type": "text/plain"})
        nesting = b"[" * 10_000 + b"]" * 10_000
        deep = b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": ' + nesting + b"}"
        as_json = {"content-type": "application/json"}
        nested = await http.post("/a2a", content=deep, headers=as_json)
        rest_deep = await http.post("/a2a/message:send", content=nesting, headers=as_json)
        not_utf8 = await http.post("/a2a", content=b'{"jsonrpc": "2.0", "id": "\xff"}', headers=as_json)
        bad_id = _message_params()
        bad_id["message"]["messageId"] = "line\nbreak"
        header_id = await http.post("/a2a", json=call("SendMessage", bad_id))
    assert (parse.json()["id"], parse.json()["error"]["code"]) == (None, -32700)
    assert (invalid.json()["id"], invalid.json()["error"]["code"]) == ("r-1", -32600)
    assert (no_method.json()["id"], no_method.json()["error"]["code"]) == (3, -32600)
    assert batch.json()["error"]["code"] == -32600
    assert (notification.status_code, notification.content) == (204, b"")
    assert (unknown.json()["id"], unknown.json()["error"]["code"]) == (7, -32601)
    assert (no_task.json()["id"], no_task.json()["error"]["code"]) == ("q", -32001)
    assert no_agent.json()["error"]["code"] == -32602
    assert bad_params.json()["error"]["code"] == -32602
    assert old.json()["error"]["code"] == -32009
    assert text.status_code == 415
    assert nested.json()["error"]["code"] == -32700  # too deep to read: a parse error
    assert rest_deep.status_code == 400
    assert (not_utf8.json()["id"], not_utf8.json()["error"]["code"]) == (None, -32700)
    assert header_id.json()["error"]["code"] == -32602
    info = no_task.json()["error"]["data"][0]
    assert (info["@type"], info["reason"]) == ("type.googleapis.com/google.rpc.ErrorInfo", "TASK_NOT_FOUND")


async def test_http_json_errors_are_google_rpc_statuses(gateway: Gateway) -> None:
    async with gateway.http() as http:
        missing = await http.get(f"/a2a/agents/echo/tasks/{new_id()}")
        bad = await http.get("/a2a/agents/echo/tasks", params={"pageSize": "500"})
        unknown_state = await http.get("/a2a/tasks", params={"status": "TASK_STATE_RUNNING"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/a2a+json"
    error = missing.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert error["details"][0]["reason"] == "TASK_NOT_FOUND"
    assert (bad.status_code, bad.json()["error"]["details"][0]["reason"]) == (400, "INVALID_PARAMS")
    assert bad.json()["error"]["details"][1]["fieldViolations"][0]["field"] == "pageSize"
    assert unknown_state.status_code == 400


async def test_a_url_of_no_operation_below_a2a_is_a_google_rpc_404_and_a_wrong_method_a_405(
    gateway: Gateway,
) -> None:
    async with gateway.http() as http:
        nowhere = [
            await http.get(path) for path in ("/a2a/agents/tasks/abc", "/a2a/agents//tasks/abc", "/a2a/x")
        ]
        wrong_method = await http.delete(f"/a2a/tasks/{new_id()}")
        elsewhere = await http.get("/v1/nothing")
    for response in nowhere:
        assert (response.status_code, response.headers["content-type"]) == (404, "application/a2a+json")
        error = response.json()["error"]
        assert (error["status"], error["details"][0]["reason"]) == ("NOT_FOUND", "METHOD_NOT_FOUND")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]
    # The rest of the API answers with problem documents, as before.
    assert (elsewhere.status_code, elsewhere.headers["content-type"]) == (404, "application/problem+json")


def _message_params() -> dict[str, Any]:
    return {"message": {"messageId": new_id(), "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
