"""A2A over NATS (docs/a2a-nats.md), spoken with nothing but nats-py and the document.

This module imports no Hivewire package: what it knows of subjects, headers,
payloads and streams comes from the binding's document. It starts a Hivewire
agent from the command line (`hivewire agent run`) and talks to it as a
client in another language would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

TENANT = "natsclient" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
async def agent(nats_server: Any) -> AsyncIterator[str]:
    """A Hivewire agent (tests.zoo:echo), started as an operator would; yields the NATS URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bus.cli",
        "--log-level",
        "WARNING",
        "agent",
        "run",
        "tests.zoo:echo",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "HIVEWIRE_NATS_URL": nats_server.url, "HIVEWIRE_HEARTBEAT_INTERVAL": "0.3"},
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.startswith(b"agent "), line
        yield nats_server.url
    finally:
        process.kill()
        await process.wait()


@pytest.fixture
async def nc(agent: str) -> AsyncIterator[Client]:
    client = await nats.connect(agent)
    yield client
    await client.close()


def user_message(*, text: str | None = None, data: Any = None, context: str | None = None) -> dict[str, Any]:
    part = {"text": text} if text is not None else {"data": data}
    return {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_USER",
        "contextId": context or uuid.uuid4().hex,
        "parts": [part],
    }


def headers() -> dict[str, str]:
    return {"Nats-Msg-Id": uuid.uuid4().hex, "Hivewire-Tenant": TENANT, "Hivewire-Timeout": "5000"}


def task_id_of(agent: str, message_id: str) -> str:
    """Section 4.2: the first 32 hex digits of SHA-256(tenant NUL agent NUL messageId)."""
    return hashlib.sha256(f"{TENANT}\x00{agent}\x00{message_id}".encode()).hexdigest()[:32]


async def test_the_agent_and_its_card_are_in_the_registry(nc: Client) -> None:
    kv = await nc.jetstream().key_value("hw_agents")
    for _ in range(50):
        keys = await kv.keys()
        if any(key.startswith("echo.") for key in keys):
            break
        await asyncio.sleep(0.1)
    entry = await kv.get(next(key for key in keys if key.startswith("echo.")))
    card = json.loads(entry.value)["card"]
    assert card["name"] == "echo"
    assert "shout" in [skill["id"] for skill in card["skills"]]
    schemas = next(e for e in card["capabilities"]["extensions"] if e["uri"].endswith("/skill-schemas/v1"))[
        "params"
    ]
    assert schemas["add"]["input"]["$ref"].endswith("Numbers")


async def test_a_message_is_answered_with_a_message(nc: Client) -> None:
    message = user_message(text="hi")
    reply = await nc.request(
        f"hw.{TENANT}.agent.echo.shout", json.dumps(message).encode(), timeout=5, headers=headers()
    )
    answer = json.loads(reply.data)
    assert (answer["role"], answer["contextId"]) == ("ROLE_AGENT", message["contextId"])
    assert answer["parts"] == [{"text": "HI"}]
    # A typed skill takes its input as the first data part.
    added = await nc.request(
        f"hw.{TENANT}.agent.echo.add", json.dumps(user_message(data={"a": 2, "b": 40})).encode(), timeout=5
    )
    assert json.loads(added.data)["parts"][0]["data"]["total"] == 42


async def test_errors_are_error_replies_and_a_missing_skill_has_no_responders(nc: Client) -> None:
    refused = await nc.request(
        f"hw.{TENANT}.agent.echo.add", json.dumps(user_message(text="not numbers")).encode(), timeout=5
    )
    assert refused.headers is not None
    assert refused.headers["Hivewire-Error"] == "bad_request"
    assert json.loads(refused.data)["code"] == "bad_request"
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request(f"hw.{TENANT}.agent.echo.nothing", b"{}", timeout=5)


async def test_a_streaming_skill_answers_in_numbered_frames(nc: Client) -> None:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    body = json.dumps(user_message(data=3)).encode()
    await nc.publish(f"hw.{TENANT}.agent.echo.count", body, reply=inbox, headers=headers())
    frames: list[Msg] = []
    while True:
        frame = await sub.next_msg(timeout=5)
        frames.append(frame)
        if frame.headers and frame.headers.get("Hivewire-Frame") != "data":
            break
    await sub.unsubscribe()
    data = [f for f in frames if f.headers and f.headers["Hivewire-Frame"] == "data"]
    assert [f.headers["Hivewire-Seq"] for f in data] == ["0", "1", "2"]  # type: ignore[index]
    chunks = [json.loads(f.data)["artifactUpdate"]["artifact"]["parts"][0]["text"] for f in data]
    assert "".join(chunks) == "1 2 3 "
    end = frames[-1].headers
    assert end is not None
    assert (end["Hivewire-Frame"], end["Hivewire-Seq"]) == ("end", "3")


async def test_a_durable_task_is_queued_run_recorded_and_announced(nc: Client) -> None:
    js = nc.jetstream()
    message = user_message(data={"a": 20, "b": 22})
    task_id = task_id_of("echo", message["messageId"])
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hear(msg: Msg) -> None:
        await events.put(json.loads(msg.data))

    # Section 5.2: listen to the conversation before submitting.
    sub = await nc.subscribe(f"hw.{TENANT}.ctx.{message['contextId']}.events", cb=hear)
    request = {"taskId": task_id, "agent": "echo", "skill": "add", "message": message, "revision": 0}
    ack = await js.publish(
        f"hw.{TENANT}.task.echo.{task_id}",
        json.dumps(request).encode(),
        headers={"Nats-Msg-Id": f"{task_id}:{message['messageId']}", "Hivewire-Tenant": TENANT},
    )
    assert ack.stream == "HW_TASKS"
    states = []
    while not states or states[-1] != "TASK_STATE_COMPLETED":
        event = await asyncio.wait_for(events.get(), 10)
        if "statusUpdate" in event and event["statusUpdate"]["taskId"] == task_id:
            states.append(event["statusUpdate"]["status"]["state"])
    await sub.unsubscribe()
    # Section 4.3: the record, in the hw_tasks bucket.
    record = json.loads((await (await js.key_value("hw_tasks")).get(f"{TENANT}.{task_id}")).value)
    assert record["id"] == task_id
    assert record["status"]["state"] == "TASK_STATE_COMPLETED"
    assert record["artifacts"][0]["name"] == "result"
    assert record["artifacts"][0]["parts"][0]["data"]["total"] == 42
    assert record["history"][0]["messageId"] == message["messageId"]
    # The same message again is the same task: JetStream drops the copy.
    again = await js.publish(
        f"hw.{TENANT}.task.echo.{task_id}",
        json.dumps(request).encode(),
        headers={"Nats-Msg-Id": f"{task_id}:{message['messageId']}"},
    )
    assert again.duplicate


async def test_a_running_task_is_canceled_by_record_and_announcement(nc: Client) -> None:
    js = nc.jetstream()
    kv = await js.key_value("hw_tasks")
    message = user_message(data=30.0)
    task_id = task_id_of("echo", message["messageId"])
    request = {"taskId": task_id, "agent": "echo", "skill": "nap", "message": message, "revision": 0}
    await js.publish(
        f"hw.{TENANT}.task.echo.{task_id}",
        json.dumps(request).encode(),
        headers={"Nats-Msg-Id": f"{task_id}:{message['messageId']}"},
    )
    for _ in range(100):  # recorded as working once it has run a moment
        try:
            entry = await kv.get(f"{TENANT}.{task_id}")
            if json.loads(entry.value)["status"]["state"] == "TASK_STATE_WORKING":
                break
        except nats.js.errors.KeyNotFoundError:
            pass
        await asyncio.sleep(0.05)
    # Section 4.5: a compare-and-set of the record, then the announcement.
    task = json.loads(entry.value)
    task["status"] = {"state": "TASK_STATE_CANCELED"}
    await kv.update(f"{TENANT}.{task_id}", json.dumps(task).encode(), last=entry.revision)
    await nc.publish(f"hw.{TENANT}.cancel.{task_id}", json.dumps({"taskId": task_id}).encode())
    # The replica stops: the task leaves the work queue instead of finishing 30 s later.
    for _ in range(100):
        try:
            await js.get_last_msg("HW_TASKS", f"hw.{TENANT}.task.echo.{task_id}")
        except nats.js.errors.NotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the canceled task is still queued")
    assert json.loads((await kv.get(f"{TENANT}.{task_id}")).value)["status"]["state"] == "TASK_STATE_CANCELED"
