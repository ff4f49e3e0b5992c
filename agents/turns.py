"""Streamed conversation turns as durable work: queued for the conversation's agent, run by one replica.

A streamed turn is not run by the gateway that took the request. It is queued
on the agent's turn subject (``hw.<tenant>.turn.<agent>.<turn>``, kept by the
``HW_TASKS`` stream and de-duplicated by the turn's id), and one replica of the
agent runs it (:class:`agents.worker.TaskWorker` with ``turns=True``, on a
consumer of its own, so a chat turn never waits behind batch tasks). That
replica publishes the turn's chunks and statuses straight to the
conversation's event log and acks the turn only once its terminal status is
stored there: the turn ends whichever gateway dies, and a turn whose replica
dies is run again by another, after a restart marker (:data:`RESTART_KEY`).
A turn that completed is then queued once more, as it ended
(``hw.<tenant>.ended.<turn>``), for whichever gateway takes it to record in
the conversation's history and usage (``gateway.turn_records``).

A turn is an A2A task like any other (its id is the turn's task id, its
context the conversation), so its record is read, listed and canceled as
one; its metadata says ``turn: true``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from agents.tasks import TaskRequest
from bus import subjects
from bus.a2a import Message, Task
from bus.client import Bus
from bus.envelope import Envelope
from bus.errors import ErrorCode
from bus.frames import error_reply
from bus.jetstream_fast import FastJetStream

__all__ = [
    "ERROR_KEY",
    "RESTART_KEY",
    "TRACE_KEY",
    "TURN_KEY",
    "Turns",
    "end_message_id",
    "failure_note",
    "restart_note",
    "turn_message_id",
]

TURN_KEY = "turn"
"""In a task's metadata: the task is a streamed conversation turn."""

RESTART_KEY = "hivewire.restart"
"""In the message of a turn's ``working`` status: the turn runs again from the start (the value is
the delivery), because the replica running it stopped; the turn's chunks before this event are void."""

TRACE_KEY = "hivewire.trace"
"""The metadata key of a turn's trace id, on its reply or its failure."""

ERROR_KEY = "error"
"""In the message of a failed turn's status: ``{"code", "message"}``, the bus's error code and why."""


def turn_message_id(tenant: str, turn_id: str) -> str:
    """The id the tasks stream de-duplicates a turn on: a turn queued twice runs once."""
    return f"turn.{subjects.token('tenant', tenant)}.{subjects.token('turn id', turn_id)}"


def end_message_id(turn_id: str) -> str:
    """The id the events stream de-duplicates a turn's terminal status on (it may be sent again)."""
    return f"{turn_id}.end"


def restart_note(task: Task, deliveries: int) -> Message:
    """The message of the ``working`` status that starts the ``deliveries``-th attempt at a turn."""
    note = Message.agent_text(
        f"restarted (delivery {deliveries}): the replica running this turn stopped; "
        "the reply streams again from the start, and what came before this event is void",
        context_id=task.context_id,
        task_id=task.id,
    )
    return msgspec.structs.replace(note, metadata={RESTART_KEY: deliveries})


def failure_note(task: Task, exc: BaseException) -> Message:
    """The message of a failed turn's status: what went wrong, and its error code (see :data:`ERROR_KEY`)."""
    code, reason = error_reply(exc) if isinstance(exc, Exception) else (ErrorCode.INTERNAL, repr(exc))
    code = str(code)
    note = Message.agent_text(reason, context_id=task.context_id, task_id=task.id)
    metadata: dict[str, Any] = {ERROR_KEY: {"code": code, "message": reason}}
    trace = (task.metadata or {}).get(TRACE_KEY)
    if trace is not None:
        metadata[TRACE_KEY] = trace
    return msgspec.structs.replace(note, metadata=metadata)


class Turns:
    """Queues streamed turns, and the ends of those that completed."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._js = FastJetStream(bus.jetstream())

    async def start(
        self,
        tenant: str,
        agent: str,
        skill: str,
        message: Message,
        *,
        timeout: float,
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Queue ``message`` (its ``taskId`` is the turn's id) as a turn of ``agent``'s ``skill``.

        Each attempt at the turn has ``timeout`` seconds; the turn's events go to the
        conversation ``message.contextId``. Returns the turn as submitted.
        """
        assert message.task_id is not None, "a turn's message names its task"
        assert message.context_id is not None, "a turn's message names its conversation"
        request = TaskRequest(
            task_id=message.task_id,
            agent=agent,
            skill=skill,
            message=message,
            metadata={**(metadata or {}), TURN_KEY: True},
        )
        envelope = Envelope(
            message_id=turn_message_id(tenant, request.task_id),
            tenant=tenant,
            deadline=time.monotonic() + timeout,
        )
        subject = subjects.turn(tenant, agent, request.task_id)
        data = self._bus.codec.encode(request)
        headers = envelope.to_headers()
        # The replica that runs the turn continues this trace (see TaskWorker).
        with self._bus.telemetry.send_span(
            "publish", subject, headers, message_id=envelope.message_id, size=len(data)
        ):
            await self._js.publish(subject, data, headers=headers)
        return request.submitted()

    async def recorded(self, tenant: str, turn_id: str, *, timeout: float) -> bool:
        """Wait until a gateway has recorded the completed turn ``turn_id`` (its queued end is gone);
        ``False`` if it has not within ``timeout`` seconds.

        A turn's end is queued before its terminal status is published, so once that
        status is seen, the queued end is there or already recorded.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.005
        subject = subjects.ended_turn(tenant, turn_id)
        while await self._js.last(subjects.TASKS_STREAM, subject) is not None:
            if loop.time() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 2)
        return True

    async def ended(self, tenant: str, turn: Task) -> None:
        """Queue ``turn`` (as it ended) for a gateway to record in its conversation; stored on return.

        Queued again (a redelivered turn that had ended), it is kept once.
        """
        await self._js.publish(
            subjects.ended_turn(tenant, turn.id),
            self._bus.codec.encode(turn),
            headers=Envelope(
                message_id=f"ended.{turn_message_id(tenant, turn.id)}", tenant=tenant
            ).to_headers(),
        )
