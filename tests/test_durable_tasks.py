"""Durable tasks: at-least-once with a single recorded outcome, redelivery after a crash,
dead letters and replay, de-duplication, cancellation, and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import msgspec
import pytest

from agents import Mesh
from bus import EmbeddedNats, Message, Role, StreamResponse, TaskState, subjects
from tests.processes import AGENT_ENV, agent_process, hivewire
from tests.task_events import completions, hearing
from tests.zoo import Done, Job

# A kill -9 leaves tasks unacked until the ack wait (2 s in tests) passes.
REDELIVERY = float(AGENT_ENV["HIVEWIRE_TASK_ACK_WAIT"])


async def test_a_task_runs_and_its_result_is_recorded(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    async with agent_process(nats_server.url, "tests.zoo:jobs") as worker:
        task = await mesh.tasks.submit("t-basic", "jobs", "work", Job(n=7))
        assert task.status.state is TaskState.SUBMITTED
        done = await mesh.tasks.wait("t-basic", task.id, timeout=10)
    assert done.status.state is TaskState.COMPLETED
    assert msgspec.convert(done.artifacts[0].parts[0].data, Done) == Done(n=7, pid=worker.pid)
    assert (await mesh.tasks.get("t-basic", task.id)).status.state is TaskState.COMPLETED


async def test_resubmitting_the_same_message_runs_it_once(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    message = _job_message(Job(n=1, seconds=0.2))
    async with completions(mesh, "t-dedup") as counts, agent_process(nats_server.url, "tests.zoo:jobs"):
        first = await mesh.tasks.submit("t-dedup", "jobs", "work", message)
        second = await mesh.tasks.submit("t-dedup", "jobs", "work", message)
        assert first.id == second.id
        await mesh.tasks.wait("t-dedup", first.id, timeout=10)
        # Also after completion: the same message id finds the finished task.
        third = await mesh.tasks.submit("t-dedup", "jobs", "work", message)
        assert third.status.state is TaskState.COMPLETED
        await asyncio.sleep(0.5)
    assert counts == {first.id: 1}


async def test_raw_duplicates_are_dropped_by_jetstream(mesh: Mesh) -> None:
    from agents.tasks import TaskRequest

    message = _job_message(Job(n=2))
    request = TaskRequest(task_id="t1", agent="jobs", skill="work", message=message)
    js = mesh.bus.jetstream()
    data = mesh.bus.codec.encode(request)
    headers = {"Nats-Msg-Id": message.message_id}
    first = await js.publish(subjects.task("t-raw", "jobs", "t1"), data, headers=headers)
    second = await js.publish(subjects.task("t-raw", "jobs", "t1"), data, headers=headers)
    assert not first.duplicate
    assert second.duplicate


async def test_kill_9_mid_task_loses_nothing_and_records_one_completion_per_task(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant, count = "t-crash", 24
    async with (
        completions(mesh, tenant) as counts,
        agent_process(nats_server.url, "tests.zoo:jobs") as doomed,
        agent_process(nats_server.url, "tests.zoo:jobs") as survivor,
    ):
        tasks = [await mesh.tasks.submit(tenant, "jobs", "work", Job(n=i, seconds=0.6)) for i in range(count)]
        await _until(lambda: _working_on(mesh, tenant, [t.id for t in tasks], doomed.pid), within=10)
        doomed.kill()
        done = [await mesh.tasks.wait(tenant, t.id, timeout=30 + REDELIVERY) for t in tasks]
        await asyncio.sleep(0.5)  # let any late duplicate completion show up
    assert all(d.status.state is TaskState.COMPLETED for d in done)
    results = [msgspec.convert(d.artifacts[-1].parts[0].data, Done) for d in done]
    assert sorted(r.n for r in results) == list(range(count))
    assert counts == {t.id: 1 for t in tasks}, "exactly one completion recorded per task"
    redelivered = [d for d in done if (d.metadata or {}).get("deliveries", 1) > 1]
    assert redelivered, "the killed replica's tasks must have been redelivered"
    assert all(r.pid == survivor.pid for r, d in zip(results, done, strict=True) if d in redelivered)


async def test_a_poison_task_is_dead_lettered_after_n_tries_and_can_be_replayed(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant = "t-poison"
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "picky", "secret", context_id="poison-ctx")
        failed = await mesh.tasks.wait(tenant, task.id, timeout=15)
        assert failed.status.state is TaskState.FAILED
        assert failed.status.message is not None
        assert "failed after 3 deliveries" in failed.status.message.text
        parked = await mesh.dead_letters.list(tenant=tenant)
        assert len(parked) == 1
        letter = parked[0].letter
        assert letter.deliveries == int(AGENT_ENV["HIVEWIRE_TASK_MAX_DELIVERIES"])
        assert letter.reason.startswith("LookupError: 'secret' is not in the conversation's state")
        assert letter.request is not None
        assert letter.request.task_id == task.id

        # Fix the cause, then replay with the command line.
        await mesh.state(tenant, "poison-ctx").put("secret", "now it is")
        out = await hivewire(nats_server.url, "dlq", "replay", str(parked[0].seq))
        assert f'"task": "{task.id}"' in out
        done = await mesh.tasks.wait(tenant, task.id, timeout=10)
    assert done.status.state is TaskState.COMPLETED
    assert done.artifacts[-1].parts[0].text == "found secret"
    assert await mesh.dead_letters.list(tenant=tenant) == []


async def test_a_replayed_task_that_fails_again_is_dead_lettered_again(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant = "t-relapse"
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "poison", "lead")
        assert (await mesh.tasks.wait(tenant, task.id, timeout=15)).status.state is TaskState.FAILED
        for replays in (1, 2):
            (parked,) = await mesh.dead_letters.list(tenant=tenant)
            replayed = await mesh.dead_letters.replay(parked.seq, mesh.tasks, tenant=tenant)
            assert (replayed.metadata or {})["replays"] == replays
            # Within the de-duplication window of the dead letters, and still parked again.
            again = await _until(lambda: mesh.dead_letters.list(tenant=tenant), within=15)
            assert [p.letter.request.replays for p in again] == [replays]  # type: ignore[union-attr]
            assert again[0].seq > parked.seq
            assert again[0].letter.deliveries == int(AGENT_ENV["HIVEWIRE_TASK_MAX_DELIVERIES"])
            failed = await mesh.tasks.wait(tenant, task.id, timeout=15)
            assert failed.status.state is TaskState.FAILED
    out = await hivewire(nats_server.url, "dlq", "list", "--tenant", tenant)
    assert "(replayed 2 times before)" in out


async def test_hivewire_dlq_list_shows_the_reason(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    tenant = "t-dlq-cli"
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "poison", "lead")
        await mesh.tasks.wait(tenant, task.id, timeout=15)
    out = await hivewire(nats_server.url, "dlq", "list", "--tenant", tenant)
    assert f"{tenant}  jobs.poison  task {task.id}  after 3 deliveries" in out
    assert "ValueError: cannot digest 'lead'" in out


async def test_a_failing_task_is_retried_until_it_succeeds(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit("t-flaky", "jobs", "flaky", "attempts")
        done = await mesh.tasks.wait("t-flaky", task.id, timeout=15)
    assert done.status.state is TaskState.COMPLETED
    assert done.artifacts[-1].parts[0].text == "succeeded on attempt 3"


async def test_a_malformed_task_goes_to_the_dead_letters_with_its_body(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        await mesh.bus.jetstream().publish(subjects.task("t-garbage", "jobs", "junk"), b"{not json")
        parked = await _until(lambda: mesh.dead_letters.list(tenant="t-garbage"), within=10)
    assert parked[0].letter.payload == "{not json"
    assert parked[0].letter.reason.startswith("malformed task")
    with pytest.raises(ValueError, match="cannot be replayed"):
        await mesh.dead_letters.replay(parked[0].seq, mesh.tasks)


async def test_a_running_task_can_be_canceled(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    tenant = "t-cancel"
    async with agent_process(nats_server.url, "tests.zoo:jobs", HIVEWIRE_TASK_CONCURRENCY="1"):
        long = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1, seconds=60))
        await _until(lambda: _working_on(mesh, tenant, [long.id], None), within=10)
        canceled = await mesh.tasks.cancel(tenant, long.id)
        assert canceled.status.state is TaskState.CANCELED
        # The only slot is free again: the next task runs at once.
        quick = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=2))
        assert (await mesh.tasks.wait(tenant, quick.id, timeout=10)).status.state is TaskState.COMPLETED
    assert (await mesh.tasks.get(tenant, long.id)).status.state is TaskState.CANCELED


async def test_a_task_canceled_before_it_starts_never_runs(mesh: Mesh, nats_server: EmbeddedNats) -> None:
    tenant = "t-cancel-early"
    task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1))
    await mesh.tasks.cancel(tenant, task.id)
    async with completions(mesh, tenant) as counts, agent_process(nats_server.url, "tests.zoo:jobs"):
        marker = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=2))
        await mesh.tasks.wait(tenant, marker.id, timeout=10)
        await _until(_async(lambda: counts[marker.id] > 0), within=5)
    assert counts == {marker.id: 1}
    assert (await mesh.tasks.get(tenant, task.id)).status.state is TaskState.CANCELED


async def test_sigterm_drains_work_in_flight_then_exits_0(nats_server: EmbeddedNats, mesh: Mesh) -> None:
    tenant = "t-drain"
    async with (
        agent_process(nats_server.url, "tests.zoo:jobs") as jobs,
        agent_process(nats_server.url, "tests.zoo:echo") as echo,
    ):
        task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1, seconds=1.5))
        await _until(lambda: _working_on(mesh, tenant, [task.id], None), within=10)
        nap = asyncio.create_task(mesh.caller(tenant).call("echo", "nap", 1.0, str))
        await asyncio.sleep(0.3)
        codes = await asyncio.gather(jobs.terminate(), echo.terminate())
        assert codes == [0, 0]
        assert (await nap).startswith("slept 1.0s")
        done = await mesh.tasks.get(tenant, task.id)
    assert done.status.state is TaskState.COMPLETED


async def test_a_streaming_skill_runs_as_a_task_and_streams_to_the_conversation(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    chunks: list[str] = []

    def collect(event: StreamResponse) -> None:
        update = event.artifact_update
        if update is not None:
            chunks.append(update.artifact.parts[0].text)  # type: ignore[arg-type]

    async with (
        hearing(mesh, subjects.conversation_events("t-stream", "s-ctx"), collect),
        agent_process(nats_server.url, "tests.zoo:jobs"),
    ):
        task = await mesh.tasks.submit("t-stream", "jobs", "tokens", 3, context_id="s-ctx")
        done = await mesh.tasks.wait("t-stream", task.id, timeout=10)
    assert done.artifacts[-1].parts[0].text == "t0 t1 t2 "
    assert chunks == ["t0 ", "t1 ", "t2 "]


def _job_message(job: Job) -> Message:
    from agents.payloads import to_message

    return to_message(job, role=Role.USER, context_id="dedup-ctx")


async def _working_on(mesh: Mesh, tenant: str, task_ids: list[str], pid: int | None) -> bool:
    for task_id in task_ids:
        task = await mesh.tasks.get(tenant, task_id)
        if task.status.state is TaskState.WORKING and (pid is None or str(pid) in str(task.metadata)):
            return True
    return False


async def _until(check, *, within: float):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def _async(check):  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(check())

    return run


async def test_a_task_that_cannot_run_is_dead_lettered_without_retries(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant = "t-invalid"
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        wrong_input = await mesh.tasks.submit(tenant, "jobs", "work", "not a job")
        no_skill = await mesh.tasks.submit(tenant, "jobs", "no_such_skill", "x")
        bad_key = await mesh.tasks.submit(tenant, "jobs", "picky", "not a key")  # a state key
        first = await mesh.tasks.wait(tenant, wrong_input.id, timeout=10)
        second = await mesh.tasks.wait(tenant, no_skill.id, timeout=10)
        third = await mesh.tasks.wait(tenant, bad_key.id, timeout=10)
    assert first.status.state is second.status.state is third.status.state is TaskState.FAILED
    reasons = {p.letter.request.skill: p.letter for p in await mesh.dead_letters.list(tenant=tenant)}  # type: ignore[union-attr]
    assert reasons["work"].deliveries == 1
    assert "invalid input for skill 'work'" in reasons["work"].reason
    assert reasons["no_such_skill"].deliveries == 1
    assert "has no skill 'no_such_skill'" in reasons["no_such_skill"].reason
    assert reasons["picky"].deliveries == 1
    assert "invalid state key 'not a key'" in reasons["picky"].reason


async def test_a_task_longer_than_the_ack_wait_is_kept_alive_not_redelivered(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant = "t-long"
    async with completions(mesh, tenant) as counts, agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1, seconds=REDELIVERY * 1.6))
        done = await mesh.tasks.wait(tenant, task.id, timeout=15)
        await _until(_async(lambda: counts[task.id] > 0), within=5)
    assert done.status.state is TaskState.COMPLETED
    assert (done.metadata or {})["deliveries"] == 1
    assert counts == {task.id: 1}


async def test_a_task_reports_working_only_if_it_runs_a_while_and_events_match_its_record(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    states: dict[str, list[TaskState]] = collections.defaultdict(list)

    def collect(event: StreamResponse) -> None:
        update = event.status_update
        if update is not None:
            states[update.task_id].append(update.status.state)

    records_stream = f"KV_{subjects.TASK_RECORDS_BUCKET}"
    js = mesh.bus.jetstream()
    async with (
        hearing(mesh, subjects.tenant_events("t-quick"), collect),
        agent_process(nats_server.url, "tests.zoo:jobs") as worker,
    ):
        before = (await js.stream_info(records_stream)).state.last_seq
        quick = await mesh.tasks.submit("t-quick", "jobs", "pause", 0.0, context_id="q-ctx")
        done = await mesh.tasks.wait("t-quick", quick.id, timeout=10)
        writes = (await js.stream_info(records_stream)).state.last_seq - before
        slow = await mesh.tasks.submit("t-quick", "jobs", "pause", 0.5, context_id="s-ctx")
        await mesh.tasks.wait("t-quick", slow.id, timeout=10)
        await _until(_async(lambda: TaskState.COMPLETED in states[slow.id]), within=5)
    # The events say what the record says: a task done within a moment goes from
    # submitted to completed; one still running then is working in between.
    assert states[quick.id] == [TaskState.SUBMITTED, TaskState.COMPLETED]
    assert states[slow.id] == [TaskState.SUBMITTED, TaskState.WORKING, TaskState.COMPLETED]
    assert (done.metadata or {})["deliveries"] == 1
    assert str(worker.pid) in str(done.metadata)
    # A quick task's record is written once, by the replica that ran it, with its outcome.
    assert writes == 1


async def test_a_record_changed_while_the_task_runs_still_gets_one_completion(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    from agents.tasks import TaskRecords, finish

    tenant = "t-changed"
    kv = await mesh.bus.jetstream().key_value(subjects.TASK_RECORDS_BUCKET)
    records = TaskRecords(kv, mesh.bus.codec)
    async with completions(mesh, tenant) as counts, agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=5, seconds=1.0))
        await _until(lambda: _working_on(mesh, tenant, [task.id], None), within=10)
        # Another writer moves the record on (as a stalled replica's claim would):
        # the worker's compare-and-set of the outcome fails, it reads, and records it once.
        found = await records.get(tenant, task.id)
        assert found is not None
        note = Message.agent_text("someone else was here", context_id=task.context_id, task_id=task.id)
        assert await records.replace(tenant, finish(found[0], TaskState.WORKING, note), found[1]) is not None
        done = await mesh.tasks.wait(tenant, task.id, timeout=10)
        await _until(_async(lambda: counts[task.id] > 0), within=5)
        await asyncio.sleep(0.3)
    assert done.status.state is TaskState.COMPLETED
    assert counts == {task.id: 1}


async def test_waiting_for_a_task_finds_a_finished_one_at_once_and_an_unknown_one_not_at_all(
    mesh: Mesh,
) -> None:
    from agents.errors import TaskNotFound
    from agents.tasks import TaskRecords, finish

    tenant = "t-waits"
    kv = await mesh.bus.jetstream().key_value(subjects.TASK_RECORDS_BUCKET)
    records = TaskRecords(kv, mesh.bus.codec)
    # Submitted to an agent nobody runs, then ended by hand (its first record): no worker involved.
    task = await mesh.tasks.submit(tenant, "nobody", "work", Job(n=1))
    assert await records.get(tenant, task.id) is None
    assert await records.replace(tenant, finish(task, TaskState.COMPLETED), 0) is not None
    # Many waits at once, as a busy gateway's `?wait=` makes them: none mistakes
    # the existing record for a missing one.
    waits = await asyncio.gather(*(mesh.tasks.wait(tenant, task.id, timeout=5) for _ in range(50)))
    assert {w.status.state for w in waits} == {TaskState.COMPLETED}
    with pytest.raises(TaskNotFound):
        await mesh.tasks.wait(tenant, "0" * 32, timeout=5)
    with pytest.raises(TaskNotFound):
        await mesh.tasks.wait("t-other", task.id, timeout=5)  # another tenant's task


async def test_a_queued_task_is_found_waited_for_and_canceled_before_any_replica_records_it(
    mesh: Mesh,
) -> None:
    from agents.errors import TaskNotFound
    from bus.errors import RequestTimeout

    tenant = "t-queued"
    task = await mesh.tasks.submit(tenant, "idle", "work", Job(n=1))
    # No replica of "idle" runs: the queued message is the task, as submitted.
    assert (await mesh.tasks.get(tenant, task.id)).status.state is TaskState.SUBMITTED
    with pytest.raises(RequestTimeout):
        await mesh.tasks.wait(tenant, task.id, timeout=0.5)
    with pytest.raises(TaskNotFound):
        await mesh.tasks.get("t-other", task.id)
    canceled = await mesh.tasks.cancel(tenant, task.id)
    assert canceled.status.state is TaskState.CANCELED
    assert (await mesh.tasks.wait(tenant, task.id, timeout=1)).status.state is TaskState.CANCELED


async def test_tasks_queued_by_an_older_release_still_run_after_an_upgrade(tmp_path: Path) -> None:
    from nats.js import api

    from agents import AgentSettings
    from agents.tasks import TaskRequest, task_id_for
    from bus import Bus

    with EmbeddedNats(data_dir=tmp_path, port=0) as server:
        settings = AgentSettings(_env_file=None, nats_url=server.url)  # type: ignore[call-arg]
        bus = await Bus.connect(settings, name="test-upgrade")
        try:
            # The stream as the older release made it, holding a task queued on its subject form.
            old = api.StreamConfig(
                name=subjects.TASKS_STREAM,
                subjects=["hw.*.task.*"],
                retention=api.RetentionPolicy.WORK_QUEUE,
            )
            await bus.jetstream().add_stream(old)
            message = _job_message(Job(n=7))
            request = TaskRequest(
                task_id=task_id_for("t-old", "jobs", message.message_id),
                agent="jobs",
                skill="work",
                message=message,
            )
            await bus.jetstream().publish("hw.t-old.task.jobs", bus.codec.encode(request))
            mesh = await Mesh.open(bus, settings)
            info = await bus.jetstream().stream_info(subjects.TASKS_STREAM)
            assert info.config.subjects == [
                subjects.all_tenants_tasks(),
                subjects.all_tenants_turns(),
                subjects.all_tenants_ended_turns(),
            ]
            async with agent_process(server.url, "tests.zoo:jobs"):
                done = await mesh.tasks.wait("t-old", request.task_id, timeout=15)
            assert done.status.state is TaskState.COMPLETED
        finally:
            await bus.close()


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.HW_TASKS.hw-tasks-jobs.3.1042.17.1700000000000000000.5",
        "$JS.ACK._.acchash.HW_TASKS.hw-tasks-jobs.3.1042.17.1700000000000000000.5.token",
    ],
)
def test_the_worker_reads_deliveries_and_sequence_from_the_ack_subject_as_nats_py_does(reply: str) -> None:
    from nats.aio.msg import Msg

    from agents.worker import _delivery

    msg = Msg(_client=None, subject="hw.t.task.jobs.x", reply=reply)  # type: ignore[arg-type]
    assert _delivery(msg) == (msg.metadata.num_delivered, msg.metadata.sequence.stream) == (3, 1042)


async def test_a_message_resubmitted_after_the_de_duplication_window_still_runs_once(
    tmp_path: Path,
) -> None:
    from agents import AgentSettings
    from bus import Bus

    with EmbeddedNats(data_dir=tmp_path, port=0) as server:
        # JetStream forgets message ids after half a second here; the record remembers.
        settings = AgentSettings(_env_file=None, nats_url=server.url, task_dedup_window=0.5)  # type: ignore[call-arg]
        bus = await Bus.connect(settings, name="test-late-resubmit")
        try:
            mesh = await Mesh.open(bus, settings)
            message = _job_message(Job(n=3))
            async with completions(mesh, "t-late") as counts, agent_process(server.url, "tests.zoo:jobs"):
                first = await mesh.tasks.submit("t-late", "jobs", "work", message)
                await mesh.tasks.wait("t-late", first.id, timeout=10)
                await asyncio.sleep(1.0)
                again = await mesh.tasks.submit("t-late", "jobs", "work", message)
                assert (again.id, again.status.state) == (first.id, TaskState.COMPLETED)
                await asyncio.sleep(0.5)
            assert counts == {first.id: 1}
            info = await bus.jetstream().stream_info(subjects.TASKS_STREAM)
            assert (info.state.last_seq, info.state.messages) == (1, 0)  # queued once, and done
        finally:
            await bus.close()


async def test_reading_a_task_as_a_replica_records_and_acks_it_never_misses_it(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    # Read right after submitting, while replicas take, record and ack at full speed:
    # between the look for the record and the look in the queue the task moves
    # from one to the other, and must be found in either.
    tenant = "t-moving"
    async with agent_process(nats_server.url, "tests.zoo:jobs", HIVEWIRE_TASK_CONCURRENCY="16"):

        async def submit_then_read(n: int) -> tuple[TaskState, TaskState]:
            task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=n))
            seen = (await mesh.tasks.get(tenant, task.id)).status.state
            done = (await mesh.tasks.wait(tenant, task.id, timeout=20)).status.state
            return seen, done

        results = await asyncio.gather(*(submit_then_read(n) for n in range(200)))
    assert {done for _, done in results} == {TaskState.COMPLETED}
    assert {seen for seen, _ in results} <= {TaskState.SUBMITTED, TaskState.WORKING, TaskState.COMPLETED}


async def test_a_task_that_asks_for_input_waits_and_a_message_continues_it(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    from agents import TaskNotFound, TaskNotResumable

    tenant = "t-resume"
    async with completions(mesh, tenant) as counts, agent_process(nats_server.url, "tests.zoo:jobs"):
        task = await mesh.tasks.submit(tenant, "jobs", "book", "Lisbon")
        asking = await mesh.tasks.wait(tenant, task.id, timeout=10, interrupted=True)
        answer = Message.user_text("Porto")
        continued = await mesh.tasks.resume(tenant, task.id, answer)
        again = await mesh.tasks.resume(tenant, task.id, answer)  # a client's retry: queued once
        done = await mesh.tasks.wait(tenant, task.id, timeout=10)
        with pytest.raises(TaskNotResumable, match="ended"):
            await mesh.tasks.resume(tenant, task.id, Message.user_text("Faro"))
        with pytest.raises(TaskNotFound):
            await mesh.tasks.resume(tenant, "no-such-task", Message.user_text("Faro"))
        # A task that is queued or running takes no message: it did not ask for one.
        busy = await mesh.tasks.submit(tenant, "jobs", "pause", 5.0)
        with pytest.raises(TaskNotResumable, match="not waiting for input"):
            await mesh.tasks.resume(tenant, busy.id, Message.user_text("hurry"))
        await mesh.tasks.cancel(tenant, busy.id)
        await asyncio.sleep(0.3)
    assert asking.status.state is TaskState.INPUT_REQUIRED
    assert asking.status.message is not None
    assert asking.status.message.text == "Where should the trip from Lisbon go?"
    assert (continued.id, continued.context_id) == (task.id, task.context_id)
    assert continued.status.state is TaskState.SUBMITTED
    assert again.id == task.id
    assert done.status.state is TaskState.COMPLETED
    assert done.artifacts[-1].parts[0].text == "booked: Lisbon -> Porto"
    assert [(m.role, m.text) for m in done.history] == [
        (Role.USER, "Lisbon"),
        (Role.AGENT, "Where should the trip from Lisbon go?"),
        (Role.USER, "Porto"),
    ]
    assert counts == {task.id: 1}
