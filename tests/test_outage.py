"""The mesh when NATS goes away: a submit says what it knows (the task id), a retry is safe, and a
worker that cannot record an outcome says so once and records it when NATS is back."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agents import AgentSettings, Mesh
from agents.errors import SubmitUnconfirmed
from agents.runtime import AgentRuntime
from bus import Bus, EmbeddedNats, Task, TaskState
from bus.outage import OUTAGES
from tests.task_events import completions, stored_completions
from tests.zoo import Job, jobs


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A server this test alone may stop and start."""
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as server:
        yield server


@contextlib.asynccontextmanager
async def working_job(settings: AgentSettings, tenant: str, name: str) -> AsyncIterator[tuple[Mesh, Task]]:
    """A jobs worker and a client (``mesh``) on connections of their own, ``name``-worker and
    ``name``-client, and a half-second job of ``tenant``'s that the worker is running already."""
    worker_bus = await Bus.connect(settings, name=f"{name}-worker")
    client_bus = await Bus.connect(settings, name=f"{name}-client")
    try:
        mesh = await Mesh.open(client_bus, settings)
        async with AgentRuntime(jobs, worker_bus, settings):
            task = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1, seconds=0.5))
            async with asyncio.timeout(10):
                while (await mesh.tasks.get(tenant, task.id)).status.state is not TaskState.WORKING:
                    await asyncio.sleep(0.02)
            yield mesh, task
    finally:
        await client_bus.close()
        await worker_bus.close()


def outage_settings(url: str) -> AgentSettings:
    """Quick to notice an outage (one-second JetStream calls) and to reconnect after it."""
    return AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=url,
        nats_jetstream_timeout=1.0,
        nats_reconnect_wait=0.1,
        nats_reconnect_max_wait=0.3,
        task_ack_wait=2.0,
        heartbeat_interval=0.3,
    )


@pytest.mark.slow
async def test_a_submit_during_an_outage_names_its_task_and_nothing_is_lost_or_run_twice(
    own_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    settings = outage_settings(own_server.url)
    tenant = "t-outage"
    worker_bus = await Bus.connect(settings, name="outage-worker")
    client_bus = await Bus.connect(settings, name="outage-client")
    try:
        mesh = await Mesh.open(client_bus, settings)
        async with completions(mesh, tenant) as counts, AgentRuntime(jobs, worker_bus, settings):
            running = await mesh.tasks.submit(tenant, "jobs", "work", Job(n=1, seconds=0.5))
            async with asyncio.timeout(10):
                while (await mesh.tasks.get(tenant, running.id)).status.state is not TaskState.WORKING:
                    await asyncio.sleep(0.02)

            caplog.set_level(logging.WARNING)
            await asyncio.to_thread(own_server.stop)
            # Refused within the JetStream timeout, with the id the task has if it runs after all.
            with pytest.raises(SubmitUnconfirmed) as unconfirmed:
                await mesh.tasks.submit(tenant, "jobs", "work", Job(n=2))
            assert len(unconfirmed.value.task_id) == 32
            # The running task ends meanwhile, and its outcome cannot be written.
            async with asyncio.timeout(10):
                while "while its outcome is recorded" not in caplog.text:
                    await asyncio.sleep(0.05)

            await asyncio.to_thread(own_server.start)
            # Retrying with the same message is the same task (it ran once, whichever copy ran it).
            retried = await mesh.tasks.submit(tenant, "jobs", "work", unconfirmed.value.message)
            assert retried.id == unconfirmed.value.task_id
            # Recorded and announced once NATS is back (the write may have gone out from the
            # connection's buffer on reconnecting: the record says so, and it is not written twice).
            for task_id in (running.id, retried.id):
                done = await mesh.tasks.wait(tenant, task_id, timeout=15)
                assert done.status.state is TaskState.COMPLETED, done.status
            await asyncio.sleep(0.3)  # room for a late duplicate completion to show
            stored = await stored_completions(mesh, tenant)
        # Events sent while a subscriber was still reconnecting reach it only through the stream.
        assert stored == {running.id: 1, retried.id: 1}
        assert set(counts.values()) <= {1}
    finally:
        await client_bus.close()
        await worker_bus.close()
    gc.collect()  # asyncio reports an unretrieved task exception when the task is collected
    waited = [r for r in caplog.records if "while its outcome is recorded" in r.getMessage()]
    assert len(waited) == 1, [r.getMessage() for r in waited]
    assert running.id in waited[0].getMessage()
    assert "could not be recorded" not in caplog.text  # nothing was left for redelivery
    assert "never retrieved" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow
async def test_an_agent_announces_itself_again_as_soon_as_a_restarted_server_is_back(
    own_server: EmbeddedNats,
) -> None:
    # Beats a minute apart: only the announcement on reconnecting can refill the registry this soon.
    settings = outage_settings(own_server.url).model_copy(update={"heartbeat_interval": 60.0})
    agent_bus = await Bus.connect(settings, name="outage-agent")
    client_bus = await Bus.connect(settings, name="outage-reader")
    try:
        mesh = await Mesh.open(client_bus, settings)
        async with AgentRuntime(jobs, agent_bus, settings):
            assert await mesh.registry.get("jobs") is not None
            await asyncio.to_thread(own_server.restart)
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(10):
                while True:
                    with contextlib.suppress(*OUTAGES):
                        if await mesh.registry.get("jobs") is not None:
                            break
                    await asyncio.sleep(0.05)
            back_after = asyncio.get_running_loop().time() - started
        assert back_after < 5, back_after
    finally:
        await client_bus.close()
        await agent_bus.close()


@pytest.mark.slow
async def test_an_outcome_that_cannot_be_recorded_is_logged_once_and_redelivered(
    own_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.infrastructure import ensure_bucket
    from bus import subjects

    settings = outage_settings(own_server.url)
    tenant = "t-unrecordable"
    async with working_job(settings, tenant, "unrecordable") as (mesh, task):
        js = mesh.bus.jetstream()
        caplog.set_level(logging.WARNING)
        # The records are gone with NATS up: writing the outcome keeps failing.
        await js.delete_stream(subjects.TASK_RECORDS_STREAM)
        async with asyncio.timeout(15):
            while "could not be recorded" not in caplog.text:
                await asyncio.sleep(0.05)
        await ensure_bucket(js, subjects.TASK_RECORDS_BUCKET, ttl=settings.task_retention)
        # Left unacked, the task comes back after the ack wait and is recorded then.
        done = await mesh.tasks.wait(tenant, task.id, timeout=15)
    assert done.status.state is TaskState.COMPLETED
    assert (done.metadata or {})["deliveries"] == 2
    gc.collect()
    unrecorded = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    assert len(unrecorded) == 1, [r.getMessage() for r in unrecorded]
    assert f"task {task.id} (delivery 1)" in unrecorded[0].getMessage()
    assert "never retrieved" not in caplog.text


@pytest.mark.slow
async def test_an_outcome_whose_record_is_gone_is_recorded_anew_not_dropped(
    own_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.infrastructure import ensure_bucket
    from bus import subjects

    settings = outage_settings(own_server.url)
    tenant = "t-gone"
    async with working_job(settings, tenant, "gone") as (mesh, task):
        js = mesh.bus.jetstream()
        caplog.set_level(logging.WARNING)
        # The records vanish while the job runs (as one past the task retention would) and the
        # bucket is back, empty, before the job ends.
        await js.delete_stream(subjects.TASK_RECORDS_STREAM)
        await ensure_bucket(js, subjects.TASK_RECORDS_BUCKET, ttl=settings.task_retention)
        async with asyncio.timeout(10):
            while "recorded anew" not in caplog.text:
                await asyncio.sleep(0.05)
        done = await mesh.tasks.wait(tenant, task.id, timeout=10)
    assert done.status.state is TaskState.COMPLETED
    assert (done.metadata or {})["deliveries"] == 1  # by the attempt that ran it
    assert "could not be recorded" not in caplog.text


@pytest.mark.slow
async def test_an_end_is_stored_by_its_own_attempt_when_jetstream_is_back_within_the_ack_wait(
    own_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.infrastructure import ensure
    from bus import subjects

    # A long ack wait, as in production: a redelivery would come only after it.
    settings = outage_settings(own_server.url).model_copy(update={"task_ack_wait": 10.0})
    tenant = "t-patient"
    async with working_job(settings, tenant, "patient") as (mesh, task):
        js = mesh.bus.jetstream()
        caplog.set_level(logging.WARNING)
        # The events stream is away for 7 s with NATS up, as on a server still loading its
        # streams: longer than eight quick attempts take, shorter than the ack wait.
        await js.delete_stream(subjects.EVENTS_STREAM)
        await asyncio.sleep(7)
        await ensure(js, settings)
        done = await mesh.tasks.wait(tenant, task.id, timeout=10)
        async with asyncio.timeout(10):
            while not (await stored_completions(mesh, tenant))[task.id]:
                await asyncio.sleep(0.1)
    assert done.status.state is TaskState.COMPLETED
    # Stored by the attempt that ran it, not by a redelivery an ack wait later.
    assert (done.metadata or {})["deliveries"] == 1
    assert "could not be recorded" not in caplog.text
    assert "trying again once it is back" in caplog.text
