"""A streamed turn survives the processes around it: the gateway that started it, the replica running it.

Every turn streams numbered chunks slowly (``tests.zoo:teller``). The client
reads each turn's events as SSE, a process dies under it, and the client goes
on where it was (``Last-Event-ID`` on another gateway, or the same stream).
Each test counts lost, duplicated and wrongly failed work: all must be zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bus import EmbeddedNats
from tests.gateway_server import api_keys, free_port
from tests.processes import AgentProcess, agent_processes, gateway_process
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

TURNS = 6
CHUNKS = 16
PAUSE = 0.12
EXPECTED = [f"c{i} " for i in range(CHUNKS)]
RESTART = "hivewire.restart"


@dataclass
class Turn:
    """What one client saw of one turn: its events in order, with their SSE ids."""

    cid: str
    task_id: str = ""
    events: list[tuple[int | None, dict[str, Any]]] = field(default_factory=list)

    @property
    def last_id(self) -> int:
        return max(i for i, _ in self.events if i is not None)

    def chunks(self, *, after_restart: bool = False) -> list[str]:
        events = self.events
        if after_restart:
            marks = [n for n, (_, e) in enumerate(events) if _restart(e)]
            events = events[marks[-1] + 1 :] if marks else events
        return [
            part["text"]
            for _, e in events
            if "artifactUpdate" in e
            for part in e["artifactUpdate"]["artifact"]["parts"]
        ]

    def ends(self) -> list[dict[str, Any]]:
        return [
            e["statusUpdate"]["status"]
            for _, e in self.events
            if "statusUpdate" in e
            and e["statusUpdate"]["taskId"] == self.task_id
            and e["statusUpdate"]["status"]["state"]
            in ("TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED")
        ]

    def restarted(self) -> bool:
        return any(_restart(e) for _, e in self.events)


def _restart(event: dict[str, Any]) -> bool:
    message = event.get("statusUpdate", {}).get("status", {}).get("message") or {}
    return RESTART in (message.get("metadata") or {})


@dataclass
class Counts:
    lost: int = 0
    duplicated: int = 0
    wrongly_failed: int = 0


def count(turns: list[Turn], *, after_restart: bool = False) -> Counts:
    """Chunks missing or seen twice, and turns that did not end completed with the whole reply once."""
    counts = Counts()
    for turn in turns:
        chunks = turn.chunks(after_restart=after_restart)
        counts.lost += sum(1 for c in EXPECTED if c not in chunks)
        counts.duplicated += len(chunks) - len(set(chunks))
        assert chunks == EXPECTED or counts.lost or counts.duplicated, chunks  # else: out of order
        ends = turn.ends()
        reply = ends[-1].get("message", {}).get("parts", [{}])[0].get("text") if ends else None
        if len(ends) != 1 or ends[0]["state"] != "TASK_STATE_COMPLETED" or reply != "".join(EXPECTED):
            counts.wrongly_failed += 1
    return counts


async def _sse(response: httpx.Response) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    event_id: int | None = None
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            yield event_id, json.loads(line[6:])
            event_id = None


async def _read(client: httpx.AsyncClient, turn: Turn, method: str, path: str, **kwargs: Any) -> None:
    """Read one SSE response into ``turn`` until it ends or its connection does."""
    with contextlib.suppress(httpx.HTTPError):
        async with client.stream(method, path, **kwargs) as response:
            assert response.status_code == 200, await response.aread()
            turn.task_id = turn.task_id or response.headers.get("hivewire-task-id", "")
            async for item in _sse(response):
                turn.events.append(item)


async def _start(client: httpx.AsyncClient, turn: Turn) -> None:
    await _read(
        client,
        turn,
        "POST",
        f"/v1/conversations/{turn.cid}/messages",
        json={"text": f"{CHUNKS} {PAUSE}"},
        headers={"Accept": "text/event-stream"},
    )


async def _until(condition: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def _histories(client: httpx.AsyncClient, turns: list[Turn]) -> list[list[str]]:
    """Each conversation's history, once every one has its turn recorded (or after 10 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        found = [
            [
                m["content"]
                for m in (await client.get(f"/v1/conversations/{t.cid}/messages")).json()["messages"]
            ]
            for t in turns
        ]
        if all(found) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


@dataclass
class Mesh:
    nats: str
    env: dict[str, str]
    key: str
    replicas: list[AgentProcess]
    survivor: str  # a gateway that stays up

    def client(self, url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)

    async def conversations(self, url: str) -> list[Turn]:
        async with self.client(url) as client:
            made = [
                await client.post("/v1/conversations", json={"agent": "teller", "skill": "tell"})
                for _ in range(TURNS)
            ]
        return [Turn(cid=response.json()["id"]) for response in made]


@pytest.fixture(scope="module")
async def mesh(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Mesh]:
    env = {
        "HIVEWIRE_REDIS_URL": redis_server.url,
        "HIVEWIRE_GATEWAY_TIMEOUT": "20",
        "HIVEWIRE_GATEWAY_KEY_CACHE": "0",
        "HIVEWIRE_GATEWAY_PUSH": "false",
    }
    port = free_port()
    async with (
        agent_processes(nats_server.url, ("tests.zoo:teller", env), ("tests.zoo:teller", env)) as replicas,
        gateway_process(nats_server.url, port, **env),
    ):
        key = (await api_keys(nats_server.url, "faults"))["faults"]
        yield Mesh(nats_server.url, env, key, replicas, f"http://127.0.0.1:{port}")


async def test_a_turn_survives_the_gateway_that_started_it(mesh: Mesh) -> None:
    port = free_port()
    doomed = f"http://127.0.0.1:{port}"
    async with gateway_process(mesh.nats, port, **mesh.env) as gateway:
        turns = await mesh.conversations(doomed)
        async with mesh.client(doomed) as client:
            reading = [asyncio.create_task(_start(client, turn)) for turn in turns]
            await _until(lambda: all(len(turn.chunks()) >= 3 for turn in turns))
            gateway.kill()  # SIGKILL, mid-stream for every turn
            await asyncio.wait_for(asyncio.gather(*reading), 10)
    assert all(len(turn.chunks()) < CHUNKS and not turn.ends() for turn in turns)
    seen = {turn.cid: turn.last_id for turn in turns}
    async with mesh.client(mesh.survivor) as client:
        await asyncio.gather(
            *(
                _read(
                    client,
                    turn,
                    "GET",
                    f"/v1/conversations/{turn.cid}/events",
                    headers={"Last-Event-ID": str(turn.last_id)},
                )
                for turn in turns
            )
        )
        records = [(await client.get(f"/v1/tasks/{turn.task_id}")).json() for turn in turns]
        histories = await _histories(client, turns)
    assert count(turns) == Counts(lost=0, duplicated=0, wrongly_failed=0)
    for turn in turns:
        ids = [i for i, _ in turn.events if i is not None]
        assert ids == sorted(set(ids))  # the resume went on after the last event seen, none twice
        assert any(i > seen[turn.cid] for i in ids)
        assert not turn.restarted()
    # A turn is a task of its conversation: its record is there, through any gateway.
    assert all(r["status"]["state"] == "TASK_STATE_COMPLETED" for r in records)
    assert all(r["metadata"]["turn"] is True for r in records)
    assert [r["contextId"] for r in records] == [turn.cid for turn in turns]
    # Recorded by a gateway that did not start it: the conversation's history holds the turn once.
    assert histories == [[f"{CHUNKS} {PAUSE}", "".join(EXPECTED)]] * TURNS


async def test_a_turn_survives_the_agent_replica_running_it(mesh: Mesh) -> None:
    turns = await mesh.conversations(mesh.survivor)
    async with mesh.client(mesh.survivor) as client:
        reading = [asyncio.create_task(_start(client, turn)) for turn in turns]
        await _until(lambda: all(len(turn.chunks()) >= 3 for turn in turns))
        record = (await client.get(f"/v1/tasks/{turns[0].task_id}")).json()
        pid = int(record["metadata"]["instance"].rsplit("-", 2)[1])
        running = next(replica for replica in mesh.replicas if replica.pid == pid)
        running.kill()  # SIGKILL, mid-turn: its turns go to the other replica after the ack wait
        await asyncio.wait_for(asyncio.gather(*reading), 30)
        histories = await _histories(client, turns)
    assert turns[0].restarted()
    assert histories == [[f"{CHUNKS} {PAUSE}", "".join(EXPECTED)]] * TURNS
    # A restarted turn streams again from the start after its restart marker: the
    # client drops what came before it, so after it every chunk comes once, in order.
    assert count(turns, after_restart=True) == Counts(lost=0, duplicated=0, wrongly_failed=0)
    for turn in turns:
        status = [e["statusUpdate"]["status"] for _, e in turn.events if "statusUpdate" in e]
        if turn.restarted():
            marker = next(s for s in status if RESTART in ((s.get("message") or {}).get("metadata") or {}))
            assert marker["state"] == "TASK_STATE_WORKING"
            assert marker["message"]["metadata"][RESTART] == 2
