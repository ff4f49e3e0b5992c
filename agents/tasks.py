"""Durable tasks: submission, records, status and cancellation.

A task is submitted to the ``HW_TASKS`` work-queue stream with the A2A
``messageId`` as its ``Nats-Msg-Id``, so JetStream drops a resubmission within
the de-duplication window; the task id is derived from the same message id.
Each task's record (an A2A ``Task``) lives in the ``hw_tasks`` bucket, written
first by the replica that runs it: until then the queued message itself (its
subject holds the task id) is the task, as submitted. Every change of state is
a compare-and-set on the record (the first one a create), which is what
guarantees a single recorded outcome even when a task runs twice
(at-least-once delivery).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from agents.errors import TaskNotFound
from agents.events import ConversationEvents
from agents.infrastructure import entries
from agents.payloads import to_message
from bus import subjects
from bus.a2a import Artifact, Message, Role, Task, TaskState, TaskStatus, new_id
from bus.client import Bus
from bus.codec import Codec
from bus.envelope import Envelope
from bus.errors import RequestTimeout
from bus.jetstream_fast import FastJetStream, FastKeyValue, PubAck

__all__ = ["TaskCancel", "TaskRecords", "TaskRequest", "Tasks", "finish", "task_id_for"]


class TaskRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the tasks stream carries: which skill to run, on which message.

    ``revision`` is the record's revision when the task was queued (0: it has
    none yet), so the worker can write it with one compare-and-set, without
    reading it first.
    """

    task_id: str
    agent: str
    skill: str
    message: Message
    metadata: dict[str, Any] | None = None
    revision: int = 0

    def submitted(self) -> Task:
        """The record of this task as submitted."""
        return Task(
            id=self.task_id,
            context_id=self.message.context_id,
            status=TaskStatus.now(TaskState.SUBMITTED),
            history=(self.message,),
            metadata={**(self.metadata or {}), "agent": self.agent, "skill": self.skill},
        )


class TaskCancel(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Announces that a task was canceled, so a replica running it stops."""

    task_id: str
    reason: str = ""


def task_id_for(agent: str, message_id: str) -> str:
    """The task id of a message submitted to ``agent``: the same message, the same task."""
    return hashlib.sha256(f"{agent}\x00{message_id}".encode()).hexdigest()[:32]


class TaskRecords:
    """The records of durable tasks, with compare-and-set transitions."""

    def __init__(self, kv: KeyValue, codec: Codec) -> None:
        self.bucket = kv
        self._kv = kv
        # Every transition is a write on the hot path of a task: nats-py reads, lean writes.
        self._writes = FastKeyValue(kv)
        self._codec = codec

    async def get(self, tenant: str, task_id: str) -> tuple[Task, int] | None:
        """The task and its record revision, or ``None`` if there is no such task."""
        try:
            entry = await self._kv.get(subjects.task_record_key(tenant, task_id))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        assert entry.revision is not None
        return self._codec.decode(entry.value or b"", Task), entry.revision

    async def create(self, tenant: str, task: Task) -> int | None:
        """Store a new record; ``None`` if one already exists."""
        key = subjects.task_record_key(tenant, task.id)
        data = self._codec.encode(task)
        try:
            return await self._writes.update(key, data, last=0)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            # Rare: the key exists. nats-py's create also writes over a deleted record.
            return await self._kv.create(key, data)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def replace(self, tenant: str, task: Task, revision: int | None) -> int | None:
        """Write ``task`` if its record is still at ``revision``; ``None`` if it changed.

        ``revision=None`` writes unconditionally (used to reset a replayed task).
        """
        key = subjects.task_record_key(tenant, task.id)
        data = self._codec.encode(task)
        if revision is None:
            return await self._writes.put(key, data)
        try:
            return await self._writes.update(key, data, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def watch_until_terminal(
        self,
        tenant: str,
        task_id: str,
        timeout: float,
        unrecorded: Callable[[str, str], Awaitable[Task | None]] | None = None,
    ) -> Task:
        """Wait until the task reaches a terminal state and return it.

        ``unrecorded(tenant, task_id)`` tells whether a task without a record
        exists all the same (queued, not yet run).

        Raises:
            TaskNotFound: there is no such task.
            RequestTimeout: it is still running after ``timeout`` seconds.
        """
        key = subjects.task_record_key(tenant, task_id)
        deadline = time.monotonic() + timeout
        watcher = await self._kv.watch(key)
        latest: Task | None = None
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=max(0.001, deadline - time.monotonic()))
                except nats.errors.TimeoutError:
                    if latest is None:
                        raise TaskNotFound(tenant, task_id) from None
                    raise RequestTimeout(key, timeout) from None
                if entry is None:
                    # nats-py's "no more history" marker, which under load can come
                    # before the record's own entry: the record itself decides.
                    if latest is None:
                        found = await self.get(tenant, task_id)
                        if found is not None:
                            latest = found[0]
                        elif unrecorded is not None:
                            latest = await unrecorded(tenant, task_id)
                        if latest is None:
                            raise TaskNotFound(tenant, task_id)
                        if latest.status.state.terminal:
                            return latest
                    continue
                if not entry.value:  # deleted or purged meanwhile
                    continue
                latest = self._codec.decode(entry.value, Task)
                if latest.status.state.terminal:
                    return latest
        finally:
            await watcher.stop()


class Tasks:
    """Submits, reads and cancels durable tasks for any tenant."""

    def __init__(self, bus: Bus, records: TaskRecords, events: ConversationEvents) -> None:
        self._bus = bus
        self._js = FastJetStream(bus.jetstream())
        self._records = records
        self._events = events

    async def submit(
        self,
        tenant: str,
        agent: str,
        skill: str,
        input: object,
        *,
        context_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Submit ``input`` to ``agent``'s ``skill`` as a durable task; return its record.

        Submitting a ``Message`` whose ``messageId`` was submitted before returns
        the existing task and runs nothing again.
        """
        message = to_message(input, role=Role.USER, context_id=context_id or new_id())
        request = TaskRequest(
            task_id=task_id_for(agent, message.message_id),
            agent=agent,
            skill=skill,
            message=message,
            metadata=metadata,
        )
        if isinstance(input, Message):
            # A message the caller made may have been submitted before, longer ago
            # than JetStream's de-duplication window remembers: the task as it stands.
            # (Any other input gets a fresh message id, so it cannot be a resubmission.)
            existing = await self._current(tenant, request.task_id)
            if existing is not None:
                return existing
        task = request.submitted()
        # Announced before it is queued, so a client sees "submitted" before any
        # outcome; under an id of its own, so the events stream keeps it once.
        await self._events.task_status(tenant, task, message_id=f"{request.task_id}.submitted")
        if (await self._publish(tenant, request, msg_id=message.message_id)).duplicate:
            return await self._current(tenant, request.task_id) or task
        return task

    async def resubmit(self, tenant: str, request: TaskRequest, *, msg_id: str) -> Task:
        """Run ``request`` again (a dead-letter replay): reset its record and requeue it."""
        found = await self._records.get(tenant, request.task_id)
        task = request.submitted()
        if found is not None:
            merged = {**(found[0].metadata or {}), **(task.metadata or {})}
            task = msgspec.structs.replace(task, metadata=merged)
        revision = await self._records.replace(tenant, task, None)
        assert revision is not None
        await self._events.task_status(tenant, task)
        await self._publish(tenant, msgspec.structs.replace(request, revision=revision), msg_id=msg_id)
        return task

    async def get(self, tenant: str, task_id: str) -> Task:
        """The task as it stands: its record, or as submitted while it waits in the queue.

        Raises:
            TaskNotFound: no such task for ``tenant``.
        """
        task = await self._current(tenant, task_id)
        if task is None:
            raise TaskNotFound(tenant, task_id)
        return task

    async def wait(self, tenant: str, task_id: str, *, timeout: float) -> Task:
        """Wait until the task completes, fails or is canceled; return its record."""
        return await self._records.watch_until_terminal(tenant, task_id, timeout, self._queued)

    async def _current(self, tenant: str, task_id: str) -> Task | None:
        found = await self._records.get(tenant, task_id)
        if found is not None:
            return found[0]
        # No replica has taken it yet: the queued message is the task. (A replica
        # records the task before it acks the message, so one of the two is there.)
        return await self._queued(tenant, task_id)

    async def _queued(self, tenant: str, task_id: str) -> Task | None:
        """For a task the caller found no record of: the task as submitted, read from its
        queued message, or else its record if one was written meanwhile; ``None`` if neither is there."""
        try:
            msg = await self._bus.jetstream().get_msg(
                subjects.TASKS_STREAM, subject=subjects.queued_task(tenant, task_id)
            )
        except nats.js.errors.NotFoundError:
            # A replica may have taken the task since the caller looked for its record;
            # it records before it acks, so with the message gone the record is there.
            found = await self._records.get(tenant, task_id)
            return found[0] if found is not None else None
        return self._bus.codec.decode(msg.data or b"", TaskRequest).submitted()

    async def cancel(self, tenant: str, task_id: str, *, reason: str = "canceled by request") -> Task:
        """Cancel the task: it will not start, and a replica running it stops.

        A task that already ended is returned unchanged.

        Raises:
            TaskNotFound: no such task for ``tenant``.
        """
        while True:
            found = await self._records.get(tenant, task_id)
            if found is None:
                queued = await self._queued(tenant, task_id)
                if queued is None:
                    raise TaskNotFound(tenant, task_id)
                # Canceled before any replica took it: the cancellation is its first record.
                found = (queued, 0)
            task, revision = found
            if task.status.state.terminal:
                return task
            note = Message.agent_text(reason, context_id=task.context_id, task_id=task.id)
            canceled = finish(task, TaskState.CANCELED, note)
            if await self._records.replace(tenant, canceled, revision) is not None:
                break
        await self._bus.publish(
            subjects.cancel(tenant, task_id),
            TaskCancel(task_id=task_id, reason=reason),
            envelope=Envelope(tenant=tenant),
        )
        await self._events.task_status(tenant, canceled)
        return canceled

    # Listing (issue 16, minimal, until issue 14's Tasks.list, which A2A ListTasks shares,
    # lands: this one reads all of the tenant's records and filters them here).

    async def list_recorded(
        self,
        tenant: str,
        *,
        context_id: str | None = None,
        state: TaskState | None = None,
        agent: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> tuple[list[Task], tuple[float, str] | None]:
        """``tenant``'s recorded tasks, the latest status change first, filtered; and where the
        next page starts (``None``: no more). Tasks still queued (no record yet) are not listed."""
        found: list[tuple[float, Task]] = []
        for entry in await entries(self._records.bucket, subjects.task_records_of(tenant)):
            task = self._bus.codec.decode(entry.value or b"", Task)
            if context_id is not None and task.context_id != context_id:
                continue
            if state is not None and task.status.state is not state:
                continue
            if agent is not None and (task.metadata or {}).get("agent") != agent:
                continue
            at = task.status.timestamp.timestamp() if task.status.timestamp is not None else 0.0
            if before is None or (at, task.id) < before:
                found.append((at, task))
        found.sort(key=lambda item: (item[0], item[1].id), reverse=True)
        page = found[:limit]
        more = len(found) > limit and page
        return [task for _, task in page], ((page[-1][0], page[-1][1].id) if more else None)

    async def _publish(self, tenant: str, request: TaskRequest, *, msg_id: str) -> PubAck:
        # The message id becomes Nats-Msg-Id: JetStream drops a copy within its window.
        headers = Envelope(message_id=msg_id, tenant=tenant).to_headers()
        return await self._js.publish(
            subjects.task(tenant, request.agent, request.task_id),
            self._bus.codec.encode(request),
            headers=headers,
        )


def finish(
    task: Task, state: TaskState, message: Message | None = None, artifacts: tuple[Artifact, ...] = ()
) -> Task:
    """``task`` moved to ``state`` with an optional status message and result artifacts."""
    return msgspec.structs.replace(
        task,
        status=TaskStatus.now(state, message),
        artifacts=task.artifacts + artifacts,
    )
