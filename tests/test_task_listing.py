"""Listing a tenant's tasks: newest first, cursor pages, filters, totals, queued tasks, tenant isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from agents import AgentSettings, Mesh
from agents.errors import InvalidPageToken
from agents.listing import TaskQuery
from agents.tasks import TaskRecords, finish
from bus import EmbeddedNats, Message, Task, TaskState, TaskStatus, new_id
from tests.processes import agent_process

RUN = new_id()[:8]


def _task(context_id: str, state: TaskState = TaskState.COMPLETED) -> Task:
    return Task(
        id=new_id(),
        context_id=context_id,
        status=TaskStatus.now(state),
        history=(Message.user_text("hello", context_id=context_id),),
    )


async def _records(mesh: Mesh) -> TaskRecords:
    return TaskRecords(await mesh.bus.jetstream().key_value("hw_tasks"), mesh.bus.codec)


async def _all_pages(mesh: Mesh, tenant: str, query: TaskQuery, page_size: int) -> list[list[Task]]:
    pages, token = [], ""
    while True:
        page = await mesh.tasks.list(tenant, query, page_size=page_size, page_token=token)
        pages.append(list(page.tasks))
        token = page.next_page_token
        if not token:
            return pages


async def test_tasks_are_listed_most_recently_updated_first_a_page_at_a_time(mesh: Mesh) -> None:
    tenant, noise = f"list{RUN}", f"noise{RUN}"
    records = await _records(mesh)
    written: list[Task] = []
    for i in range(230):
        task = _task(f"c{i % 3}")
        await records.create(tenant, task)
        written.append(task)
        if i % 2:  # another tenant's tasks in between: never listed, never counted
            await records.create(noise, _task("c0"))
    # The oldest task changes last: it is now the most recently updated.
    revision = (await records.get(tenant, written[0].id) or (written[0], 0))[1]
    await records.replace(tenant, finish(written[0], TaskState.FAILED), revision)
    queued = await mesh.tasks.submit(tenant, f"idle{RUN}", "work", "not run by anyone")

    pages = await _all_pages(mesh, tenant, TaskQuery(), page_size=100)
    listed = [task.id for page in pages for task in page]

    assert listed == [queued.id, written[0].id, *[t.id for t in reversed(written[1:])]]
    assert [len(page) for page in pages] == [100, 100, 31]
    first = await mesh.tasks.list(tenant, page_size=3)
    assert first.total_size == 231
    assert [t.status.state for t in first.tasks[:2]] == [TaskState.SUBMITTED, TaskState.FAILED]
    assert (await mesh.tasks.list(noise, page_size=1)).total_size == 115


async def test_listings_filter_by_conversation_state_and_update_time(mesh: Mesh) -> None:
    tenant = f"filters{RUN}"
    records = await _records(mesh)
    states = [TaskState.COMPLETED, TaskState.FAILED, TaskState.WORKING]
    written = [_task(f"ctx{i % 4}", states[i % 3]) for i in range(30)]
    for task in written:
        await records.create(tenant, task)
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    for i in range(30, 60):
        written.append(_task(f"ctx{i % 4}", states[i % 3]))
        await records.create(tenant, written[-1])

    def expect(keep: list[Task]) -> list[str]:
        return [task.id for task in reversed(keep)]

    by_context = await _all_pages(mesh, tenant, TaskQuery(context_id="ctx1"), page_size=4)
    by_state = await _all_pages(mesh, tenant, TaskQuery(state=TaskState.FAILED), page_size=50)
    both = await mesh.tasks.list(tenant, TaskQuery(context_id="ctx2", state=TaskState.WORKING))
    recent = await mesh.tasks.list(tenant, TaskQuery(updated_after=middle), page_size=100)

    in_ctx1 = [t for t in written if t.context_id == "ctx1"]
    assert [t.id for page in by_context for t in page] == expect(in_ctx1)
    assert [t.id for page in by_state for t in page] == expect(
        [t for t in written if t.status.state is TaskState.FAILED]
    )
    assert [t.id for t in both.tasks] == expect(
        [t for t in written if t.context_id == "ctx2" and t.status.state is TaskState.WORKING]
    )
    assert [t.id for t in recent.tasks] == expect(written[30:])
    assert recent.total_size == 30
    assert (await mesh.tasks.list(tenant, TaskQuery(context_id="ctx1"), page_size=4)).total_size == 15


async def test_a_scan_that_stops_early_returns_what_it_found_and_a_token_to_go_on(
    agent_settings: AgentSettings,
) -> None:
    from bus import Bus

    tenant = f"scan{RUN}"
    settings = agent_settings.model_copy(update={"task_list_scan": 100})
    bus = await Bus.connect(settings)
    try:
        mesh = await Mesh.open(bus, settings)
        records = await _records(mesh)
        rare = _task("needle")
        await records.create(tenant, rare)
        for _ in range(150):
            await records.create(tenant, _task("hay"))
        needle = TaskQuery(context_id="needle")
        first = await mesh.tasks.list(tenant, needle)
        second = await mesh.tasks.list(tenant, needle, page_token=first.next_page_token)
    finally:
        await bus.close()
    assert (first.tasks, bool(first.next_page_token)) == ((), True)
    assert [t.id for t in second.tasks] == [rare.id]
    assert (second.next_page_token, second.total_size) == ("", 1)


async def test_a_queued_task_is_listed_once_as_it_runs_and_completes(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    tenant = f"queued{RUN}"
    # Long enough that the record is seen working on a loaded machine (it is recorded as working
    # only once the task has run for a moment): a listing can take a while there.
    task = await mesh.tasks.submit(tenant, "jobs", "pause", 2.0)
    before = await mesh.tasks.list(tenant)
    async with agent_process(nats_server.url, "tests.zoo:jobs"):
        for _ in range(100):  # running, recorded as working: the record is listed, not the message
            running = await mesh.tasks.list(tenant)
            if running.tasks and running.tasks[0].status.state is TaskState.WORKING:
                break
            await asyncio.sleep(0.05)
        await mesh.tasks.wait(tenant, task.id, timeout=10)
        after = await mesh.tasks.list(tenant)
    assert [(t.id, t.status.state) for t in before.tasks] == [(task.id, TaskState.SUBMITTED)]
    assert [(t.id, t.status.state) for t in running.tasks] == [(task.id, TaskState.WORKING)]
    assert [(t.id, t.status.state) for t in after.tasks] == [(task.id, TaskState.COMPLETED)]
    assert before.total_size == running.total_size == after.total_size == 1


async def test_page_tokens_are_checked(mesh: Mesh) -> None:
    tenant = f"tokens{RUN}"
    records = await _records(mesh)
    for _ in range(3):
        await records.create(tenant, _task("c"))
    page = await mesh.tasks.list(tenant, page_size=1)
    with pytest.raises(InvalidPageToken, match="not a token"):
        await mesh.tasks.list(tenant, page_token="not-a-token")
    with pytest.raises(InvalidPageToken, match="other filters"):
        await mesh.tasks.list(tenant, TaskQuery(context_id="c"), page_token=page.next_page_token)
    empty = await mesh.tasks.list(f"nobody{RUN}")
    assert (empty.tasks, empty.next_page_token, empty.total_size) == ((), "", 0)
