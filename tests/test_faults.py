"""Faults under load: replicas killed with SIGKILL, NATS restarted, Redis gone and back, while hundreds
of durable tasks (or conversation turns) are in flight. Each counts lost, duplicated and wrongly failed
work, prints the counts, and asserts them all zero.

Lost: a task that never reached an outcome (or a turn missing from the history). Duplicated: a task
whose completion was recorded or announced more than once (a turn in the history twice); running a
task again after its replica died is at-least-once delivery, counted apart as ``redelivered``.
Wrongly failed: a task that failed or was canceled, or a request answered with an error.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from agents import AgentSettings, Mesh
from agents.errors import SubmitUnconfirmed
from agents.history import ConversationHistory
from agents.payloads import to_message
from agents.redisstore import RedisStore
from bus import Bus, EmbeddedNats, Role, Task, TaskState
from gateway.settings import GatewaySettings, TenantLimits
from tests.gateway_server import api_keys, serve_gateway
from tests.openai_server import OpenAIServer
from tests.processes import agent_processes, paused
from tests.redis_server import RedisServer
from tests.task_events import completions, stored_completions
from tests.test_durable_tasks import REDELIVERY
from tests.zoo import Job

pytestmark = pytest.mark.slow

TASKS = 500
# Enough slots that 500 short jobs take about a second on three replicas.
REPLICA_ENV = {
    "HIVEWIRE_TASK_CONCURRENCY": "16",
    "HIVEWIRE_NATS_RECONNECT_WAIT": "0.1",
    "HIVEWIRE_NATS_RECONNECT_MAX_WAIT": "0.3",
}
JOB_SECONDS = 0.1


@dataclasses.dataclass
class Tally:
    """What became of the work of one fault scenario."""

    scenario: str
    submitted: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    wrongly_failed: int = 0
    redelivered: int = 0
    # Ends stored only by a redelivery (the replica that recorded the outcome could not store its event).
    announced_late: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.scenario}: {self.submitted} submitted, {self.completed} completed, lost {self.lost}, "
            f"duplicated {self.duplicated}, wrongly failed {self.wrongly_failed} "
            f"(redelivered {self.redelivered}, ends announced late {self.announced_late}) "
            f"in {self.seconds:.1f}s"
        )

    def assert_clean(self) -> None:
        print(f"\nFAULTS {self}")
        assert (self.lost, self.duplicated, self.wrongly_failed) == (0, 0, 0), str(self)
        assert self.completed == self.submitted, str(self)


async def submit_all(
    mesh: Mesh,
    tenant: str,
    count: int,
    *,
    parallel: int = 32,
    progress: collections.Counter[str] | None = None,
) -> list[str]:
    """Submit ``count`` jobs as durable tasks; return their ids (``progress`` counts submits and retries).

    A submit NATS could not confirm is retried with the same message (the same task), as a client
    of ``Tasks.submit`` should: that is what keeps an outage from losing or duplicating it.
    """
    gate = asyncio.Semaphore(parallel)
    counts = progress if progress is not None else collections.Counter()

    async def one(n: int) -> str:
        message = to_message(Job(n=n, seconds=JOB_SECONDS), role=Role.USER, context_id=f"{tenant}-ctx-{n}")
        async with gate:
            for _ in range(100):
                try:
                    task = await mesh.tasks.submit(tenant, "jobs", "work", message)
                    counts["submitted"] += 1
                    return task.id
                except SubmitUnconfirmed as unconfirmed:
                    counts["unconfirmed"] += 1
                    message = unconfirmed.message
                    await mesh.bus.until_connected()
            raise AssertionError(f"job {n} was never confirmed")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def settle(mesh: Mesh, tenant: str, task_ids: list[str], tally: Tally, *, within: float) -> None:
    """Wait (up to ``within`` seconds in all) for every task's outcome, then count."""
    deadline = time.monotonic() + within
    outcomes: list[Task | None] = []
    for task_id in task_ids:
        try:
            outcomes.append(
                await mesh.tasks.wait(tenant, task_id, timeout=max(0.1, deadline - time.monotonic()))
            )
        except TimeoutError:
            outcomes.append(None)
    # A replica that could not store a task's end while NATS recovered leaves the task unacked, and
    # its redelivery announces the end again: an end counts as lost only if it is still missing then.
    completed = {t.id for t in outcomes if t is not None and t.status.state is TaskState.COMPLETED}
    deadline = max(deadline, time.monotonic() + 4 * REDELIVERY)
    while True:
        await asyncio.sleep(0.5)  # room for a late duplicate completion to be announced
        announced = await stored_completions(mesh, tenant)
        late = sum(1 for task_id in completed if not announced[task_id])
        tally.announced_late = max(tally.announced_late, late)
        if not late or time.monotonic() > deadline:
            break
    tally.submitted = len(task_ids)
    for task_id, task in zip(task_ids, outcomes, strict=True):
        state = None if task is None else task.status.state
        if state is TaskState.COMPLETED:
            tally.completed += 1
            assert task is not None
            if (task.metadata or {}).get("deliveries", 1) > 1:
                tally.redelivered += 1
            # One completion recorded: one "completed" event, and one result artifact.
            artifacts = [a for a in task.artifacts if a.name == "result"]
            tally.duplicated += max(0, announced[task_id] - 1) + max(0, len(artifacts) - 1)
            tally.lost += announced[task_id] == 0  # recorded, but never announced
        elif state in (TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED):
            tally.wrongly_failed += 1
        else:
            tally.lost += 1
    submitted = set(task_ids)
    tally.duplicated += sum(1 for task_id in announced if task_id not in submitted)


async def until(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.05)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def test_replicas_killed_with_sigkill_under_500_tasks_lose_and_duplicate_nothing(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tally = Tally("kill -9 of 2 of 3 replicas")
    tenant = f"t-kill-{int(time.time())}"
    started = time.monotonic()
    async with (
        completions(mesh, tenant) as heard,
        agent_processes(nats_server.url, *(("tests.zoo:jobs", REPLICA_ENV) for _ in range(3))) as replicas,
    ):
        submitting = asyncio.create_task(submit_all(mesh, tenant, TASKS))
        for victim, share in zip(replicas[:2], (0.15, 0.45), strict=True):
            # Killed mid-load, with tasks of its own running.
            await until(_async(lambda s=share: sum(heard.values()) >= s * TASKS), within=30)  # type: ignore[misc]
            victim.kill()
        task_ids = await submitting
        await settle(mesh, tenant, task_ids, tally, within=30 + 2 * REDELIVERY)
    tally.seconds = time.monotonic() - started
    tally.assert_clean()
    assert tally.redelivered > 0, "the killed replicas' tasks must have been run again"


@pytest.fixture
def own_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as server:
        yield server  # type: ignore[misc]


async def test_a_nats_restart_under_500_tasks_loses_and_duplicates_nothing(own_nats: EmbeddedNats) -> None:
    tally = Tally("NATS restarted mid-load")
    tenant = "t-nats-restart"
    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=own_nats.url,
        nats_jetstream_timeout=1.0,
        nats_reconnect_wait=0.1,
        nats_reconnect_max_wait=0.3,
    )
    started = time.monotonic()
    bus = await Bus.connect(settings, name="faults-client")
    try:
        mesh = await Mesh.open(bus, settings)
        async with agent_processes(own_nats.url, *(("tests.zoo:jobs", REPLICA_ENV) for _ in range(2))):
            progress: collections.Counter[str] = collections.Counter()
            submitting = asyncio.create_task(submit_all(mesh, tenant, TASKS, progress=progress))
            # While tasks are being submitted, and others run.
            await until(_async(lambda: progress["submitted"] >= TASKS // 3), within=30)
            await asyncio.to_thread(own_nats.restart)
            task_ids = await submitting
            await settle(mesh, tenant, task_ids, tally, within=30 + 2 * REDELIVERY)
        print(f"\nsubmits NATS could not confirm (retried with the same message): {progress['unconfirmed']}")
    finally:
        await bus.close()
    tally.seconds = time.monotonic() - started
    tally.assert_clean()


TURNS = 120
CONVERSATIONS = 12


@pytest.mark.parametrize("outage", ["stopped", "stalled"])
async def test_a_redis_outage_under_conversation_load_loses_no_turn_and_fails_no_request(
    nats_server: EmbeddedNats, openai_server: OpenAIServer, outage: str
) -> None:
    """Redis stopped and started, or stalled (paused: what it was sent meanwhile it carries out
    once it goes on, after its clients gave up waiting): every turn is in the history once, and
    the tenant's usage is what the replies spent, neither short nor counted twice."""
    tally = Tally(f"Redis {outage} mid-load (conversation turns)")
    started = time.monotonic()
    # Persistent, as a production Redis is: the outage, not the restart, is what is tried here.
    with RedisServer(persist=True) as redis:
        tenant = f"redisfaults{int(time.time())}"
        settings = GatewaySettings(
            _env_file=None,  # type: ignore[call-arg]
            nats_url=nats_server.url,
            redis_url=redis.url,
            redis_retry_interval=0.2,
            gateway_agent="assistant",
            gateway_skill="chat",
            gateway_key_cache=60,
            # The load, not the tenant's rate, is what is tried here.
            gateway_tenant_limits={tenant: TenantLimits(rate=1000, burst=1000)},
        )
        env = {"HIVEWIRE_REDIS_URL": redis.url, "HIVEWIRE_LLM_BASE_URL": openai_server.url}
        key = (await api_keys(nats_server.url, tenant))[tenant]
        async with (
            agent_processes(nats_server.url, ("tests.zoo:assistant", env)),
            serve_gateway(settings) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client,
        ):
            ids = [(await client.post("/v1/conversations")).json()["id"] for _ in range(CONVERSATIONS)]
            failures: list[str] = []
            spent = collections.Counter[str]()

            async def converse(c: int) -> None:
                for turn in range(TURNS // CONVERSATIONS):
                    response = await client.post(
                        f"/v1/conversations/{ids[c]}/messages", json={"text": f"c{c} turn {turn}"}
                    )
                    if response.status_code >= 400:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    for used in response.json()["message"]["metadata"]["hivewire.usage"].values():
                        spent.update(inputTokens=used["inputTokens"], outputTokens=used["outputTokens"])

            talking = asyncio.create_task(_gather(converse(c) for c in range(CONVERSATIONS)))
            await asyncio.sleep(0.5)
            if outage == "stopped":
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(redis.start)  # the same port and data
            else:
                assert redis.pid is not None
                async with paused(redis.pid):
                    await asyncio.sleep(1.5)
            await talking
            tally.submitted = TURNS
            tally.wrongly_failed = len(failures)
            # Every turn's message is in its conversation's history once, as another replica reads it
            # from Redis (the gateway wrote the outage's turns through once Redis was back).
            store = RedisStore(redis.url)
            replica = ConversationHistory(store, ttl=600, max_turns=50, token_budget=10**9)
            try:
                await until(lambda: _written_through(replica, tenant, ids), within=10)
                for c, cid in enumerate(ids):
                    said = collections.Counter(t.content for t in await replica.load(tenant, cid))
                    for turn in range(TURNS // CONVERSATIONS):
                        seen = said[f"c{c} turn {turn}"]
                        tally.completed += seen >= 1
                        tally.lost += seen == 0
                        tally.duplicated += max(0, seen - 1)
            finally:
                await store.close()
            # And the gateway's own API says the same.
            answered = (await client.get(f"/v1/conversations/{ids[0]}/messages")).json()["messages"]
            assert [m["content"] for m in answered if m["role"] == "user"] == [
                f"c0 turn {turn}" for turn in range(TURNS // CONVERSATIONS)
            ]
            # The usage the outage's turns spent reached the shared totals, once.
            async with asyncio.timeout(10):
                while True:
                    usage = (await client.get("/v1/usage")).json()
                    if usage["shared"] and usage["inputTokens"] >= spent["inputTokens"]:
                        break
                    await asyncio.sleep(0.1)
            assert (usage["inputTokens"], usage["outputTokens"], usage["tokensToday"]) == (
                spent["inputTokens"],
                spent["outputTokens"],
                spent["inputTokens"] + spent["outputTokens"],
            )
    tally.seconds = time.monotonic() - started
    assert not failures, failures[:3]
    tally.assert_clean()


async def _written_through(replica: ConversationHistory, tenant: str, ids: list[str]) -> bool:
    for cid in ids:
        if len(await replica.load(tenant, cid)) < 2 * (TURNS // CONVERSATIONS):
            return False
    return True


async def _gather(coroutines: object) -> None:
    await asyncio.gather(*coroutines)  # type: ignore[call-overload]
