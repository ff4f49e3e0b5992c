"""Durable tasks: submission, status, cancellation, and continuing a task that waits for input.

A task's id is derived from the tenant, the agent and the A2A ``messageId``
(:func:`task_id_for`), and it is submitted to the ``HW_TASKS`` work-queue
stream with a ``Nats-Msg-Id`` made of the task id and the message id
(:func:`dedup_id`), so JetStream drops a resubmission within the
de-duplication window while another tenant's message of the same id, or the
same id sent to another agent, is a task of its own.
Each task's record (an A2A ``Task``) lives in the ``hw_tasks`` bucket, written
first by the replica that runs it: until then the queued message itself (its
subject holds the task id) is the task, as submitted. Every change of state is
a compare-and-set on the record (``agents.records``), which is what
guarantees a single recorded outcome even when a task runs twice
(at-least-once delivery).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from agents.errors import SubmitUnconfirmed, TaskNotFound, TaskNotResumable
from agents.events import ConversationEvents
from agents.listing import DEFAULT_PAGE_SIZE, TaskListing, TaskPage, TaskQuery
from agents.payloads import to_message
from agents.records import TaskRecords
from bus import subjects
from bus.a2a import Artifact, Message, Role, Task, TaskState, TaskStatus, new_id
from bus.client import Bus
from bus.direct import DirectGets
from bus.envelope import Envelope
from bus.jetstream_fast import FastJetStream, PubAck
from bus.outage import OUTAGES

__all__ = ["TaskCancel", "TaskRecords", "TaskRequest", "Tasks", "dedup_id", "finish", "task_id_for"]


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
    # The task as it stood when ``message`` continued it (it was waiting for input); None: a new task.
    prior: Task | None = None
    # How often the task was replayed from the dead letters (each replay may park it again).
    replays: int = 0

    def submitted(self) -> Task:
        """The record of this task as submitted (a continued one: with its earlier messages)."""
        metadata = {**(self.metadata or {}), "agent": self.agent, "skill": self.skill}
        if self.prior is not None:
            return msgspec.structs.replace(
                self.prior,
                status=TaskStatus.now(TaskState.SUBMITTED),
                history=(*self.prior.history, self.message),
                metadata={**(self.prior.metadata or {}), **metadata},
            )
        return Task(
            id=self.task_id,
            context_id=self.message.context_id,
            status=TaskStatus.now(TaskState.SUBMITTED),
            history=(self.message,),
            metadata=metadata,
        )


class TaskCancel(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Announces that a task was canceled, so a replica running it stops."""

    task_id: str
    reason: str = ""


def task_id_for(tenant: str, agent: str, message_id: str) -> str:
    """The task id of ``tenant``'s message submitted to ``agent``: the same message, the same task.

    Scoped by tenant and agent: message ids are the clients' own (an
    ``Idempotency-Key``), and two tenants may well pick the same one.
    """
    return hashlib.sha256(f"{tenant}\x00{agent}\x00{message_id}".encode()).hexdigest()[:32]


def dedup_id(task_id: str, message_id: str) -> str:
    """The ``Nats-Msg-Id`` of ``message_id`` queued for task ``task_id`` (new, or continued by it).

    JetStream de-duplicates across the whole stream: the task id in it keeps
    one tenant's (or agent's) message ids from swallowing another's.
    """
    return f"{task_id}:{message_id}"


class Tasks:
    """Submits, reads and cancels durable tasks for any tenant."""

    def __init__(
        self, bus: Bus, records: TaskRecords, events: ConversationEvents, *, list_scan: int = 1000
    ) -> None:
        self._bus = bus
        self._js = FastJetStream(bus.jetstream())
        self._records = records
        self._events = events
        self._listing = TaskListing(
            DirectGets(bus.jetstream()),
            bus.codec,
            lambda data: bus.codec.decode(data, TaskRequest).submitted(),
            scan=list_scan,
        )

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

        Raises:
            SubmitUnconfirmed: NATS is away or recovering, so the task may or may not
                be queued; it carries the task's id, and the message to submit again.
        """
        message = to_message(input, role=Role.USER, context_id=context_id or new_id())
        request = TaskRequest(
            task_id=task_id_for(tenant, agent, message.message_id),
            agent=agent,
            skill=skill,
            message=message,
            metadata=metadata,
        )
        try:
            return await self._submit(tenant, request, looked_up=isinstance(input, Message))
        except OUTAGES as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise SubmitUnconfirmed(tenant, request.task_id, message, reason) from exc

    async def _submit(self, tenant: str, request: TaskRequest, *, looked_up: bool) -> Task:
        message = request.message
        if looked_up:
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
        ack = await self._publish(tenant, request, msg_id=dedup_id(request.task_id, message.message_id))
        if ack.duplicate:
            return await self._current(tenant, request.task_id) or task
        return task

    async def resubmit(self, tenant: str, request: TaskRequest, *, msg_id: str) -> Task:
        """Run ``request`` again (a dead-letter replay): reset its record and requeue it.

        The request is queued with its replay count one higher, so that a replay
        that fails again is parked again (see :meth:`DeadLetters.park`).
        """
        request = msgspec.structs.replace(request, replays=request.replays + 1)
        found = await self._records.get(tenant, request.task_id)
        task = request.submitted()
        if found is not None:
            merged = {**(found[0].metadata or {}), **(task.metadata or {})}
            task = msgspec.structs.replace(task, metadata=merged)
        task = msgspec.structs.replace(task, metadata={**(task.metadata or {}), "replays": request.replays})
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

    async def list(
        self,
        tenant: str,
        query: TaskQuery | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
    ) -> TaskPage:
        """A page of ``tenant``'s tasks, most recently updated first (see :mod:`agents.listing`).

        Raises:
            InvalidPageToken: ``page_token`` is not one a listing with this query gave out.
        """
        query = query or TaskQuery()
        return await self._listing.page(tenant, query, page_size=page_size, page_token=page_token)

    async def wait(self, tenant: str, task_id: str, *, timeout: float, interrupted: bool = False) -> Task:
        """Wait until the task completes, fails or is canceled (with ``interrupted``, also until it
        waits for input); return its record."""
        return await self._records.watch_until_terminal(
            tenant, task_id, timeout, self._queued, interrupted=interrupted
        )

    async def resume(self, tenant: str, task_id: str, message: Message) -> Task:
        """Continue a task that waits for input with ``message``: its skill runs again on it.

        The task keeps its id and conversation; its history grows by the message.
        Sending the same message again (a retry) queues nothing twice.

        Raises:
            TaskNotFound: no such task for ``tenant``.
            TaskNotResumable: the task ended, or is not waiting for input.
        """
        while True:
            found = await self._records.get(tenant, task_id)
            if found is None:
                queued = await self._queued(tenant, task_id)
                if queued is None:
                    raise TaskNotFound(tenant, task_id)
                found = (queued, 0)
            task, revision = found
            state = task.status.state
            metadata = task.metadata or {}
            agent, skill = str(metadata.get("agent", "")), str(metadata.get("skill", ""))
            message = msgspec.structs.replace(message, context_id=task.context_id, task_id=task_id)
            if any(m.message_id == message.message_id for m in task.history):
                # This very message continued it already (the client is retrying): the task as it
                # stands, queued again if still waiting to run (JetStream keeps one copy of the id).
                if state is TaskState.SUBMITTED and task.history[-1].message_id == message.message_id:
                    prior = msgspec.structs.replace(task, history=task.history[:-1])
                    request = TaskRequest(
                        task_id=task_id,
                        agent=agent,
                        skill=skill,
                        message=message,
                        prior=prior,
                        revision=revision,
                    )
                    await self._publish(tenant, request, msg_id=dedup_id(task_id, message.message_id))
                return task
            if state.terminal:
                raise TaskNotResumable(task_id, state.value, f"it ended ({state.value})")
            if not state.interrupted:
                raise TaskNotResumable(task_id, state.value, f"it is {state.value}, not waiting for input")
            request = TaskRequest(task_id=task_id, agent=agent, skill=skill, message=message, prior=task)
            continued = request.submitted()
            new_revision = await self._records.replace(tenant, continued, revision)
            if new_revision is not None:
                break
        await self._events.task_status(tenant, continued)
        await self._publish(
            tenant,
            msgspec.structs.replace(request, revision=new_revision),
            msg_id=dedup_id(task_id, message.message_id),
        )
        return continued

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
        msg = await self._js.last(subjects.TASKS_STREAM, subjects.queued_task(tenant, task_id))
        if msg is None:
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

    async def _publish(self, tenant: str, request: TaskRequest, *, msg_id: str) -> PubAck:
        # ``msg_id`` becomes Nats-Msg-Id: JetStream drops a copy within its window.
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
