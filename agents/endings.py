"""What an attempt at a task ends in: completed, waiting for input, retried, failed or dead-lettered.

A task's handler failure is retried with exponential delays; at the
``task_max_deliveries``-th failed delivery (or at once, when another attempt
cannot help) the task is parked in the dead-letter stream with the reason. A
turn that fails ends at once, failed, with the error: it is not retried nor
dead-lettered, since its chunks went out already.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec
from nats.aio.msg import Msg

from agents.deadletter import DeadLetter, DeadLetters
from agents.errors import InputRequired
from agents.recording import Recorder
from agents.settings import AgentSettings
from agents.tasks import TaskRecords, TaskRequest, finish
from agents.turns import failure_note
from agents.usage import USAGE_KEY
from bus import subjects
from bus.a2a import Artifact, Message, Task, TaskState, new_id
from bus.errors import ErrorCode, InvalidSubjectToken, RemoteError

if TYPE_CHECKING:
    from agents.worker import WorkerStats

__all__ = ["Endings"]

log = logging.getLogger(__name__)


class Endings:
    """Ends the attempts of one worker's tasks (or turns), counting each in its stats."""

    def __init__(
        self,
        *,
        agent: str,
        settings: AgentSettings,
        records: TaskRecords,
        dead_letters: DeadLetters,
        outcomes: Recorder,
        stats: WorkerStats,
        turns: bool,
    ) -> None:
        self._agent = agent
        self._settings = settings
        self._records = records
        self._dead_letters = dead_letters
        self._outcomes = outcomes
        self._stats = stats
        self._turns = turns

    async def complete(self, msg: Msg, tenant: str, task: Task, revision: int, reply: Message) -> None:
        """The skill answered ``reply``: the task is completed, with the reply as its artifact."""
        artifact = Artifact(artifact_id=new_id(), name="result", parts=reply.parts)
        done = finish(task, TaskState.COMPLETED, reply, (artifact,))
        usage = (reply.metadata or {}).get(USAGE_KEY)
        if usage is not None:
            done = msgspec.structs.replace(done, metadata={**(done.metadata or {}), "usage": usage})
        await self._end(msg, tenant, done, revision)

    async def interrupted(self, msg: Msg, tenant: str, task: Task, revision: int, ask: InputRequired) -> None:
        """The skill needs more from the user: the task waits, its question recorded, until resumed."""
        question = Message.agent_text(ask.question, context_id=task.context_id, task_id=task.id)
        state = TaskState.AUTH_REQUIRED if ask.auth else TaskState.INPUT_REQUIRED
        waiting = finish(task, state, question)
        waiting = msgspec.structs.replace(waiting, history=(*waiting.history, question))
        await self._end(msg, tenant, waiting, revision)

    async def turn_failed(self, msg: Msg, tenant: str, task: Task, revision: int, exc: Exception) -> None:
        """A turn's skill failed: the turn ends failed, with the error (see :func:`failure_note`)."""
        log.warning("turn %s failed: %s: %s", task.id, type(exc).__name__, exc)
        await self._end(msg, tenant, finish(task, TaskState.FAILED, failure_note(task, exc)), revision)

    async def failed(
        self,
        msg: Msg,
        tenant: str,
        request: TaskRequest,
        task: Task,
        revision: int,
        deliveries: int,
        exc: Exception,
    ) -> None:
        """The ``deliveries``-th attempt failed with ``exc``: retried later, or given up on."""
        reason = f"{type(exc).__name__}: {exc}"
        if deliveries >= self._settings.task_max_deliveries or _permanent(exc):
            await self.give_up(msg, tenant, request, task, revision, deliveries, reason)
            return
        self._stats.retried += 1
        log.warning("task %s failed (delivery %d), retrying: %s", request.task_id, deliveries, reason)
        note = Message.agent_text(
            f"attempt {deliveries} failed ({reason}); retrying", context_id=task.context_id, task_id=task.id
        )
        await self._records.replace(tenant, finish(task, TaskState.WORKING, note), revision)
        delay = self._settings.task_retry_delay * 2 ** (deliveries - 1)
        await msg.nak(delay=delay)

    async def give_up(
        self,
        msg: Msg,
        tenant: str,
        request: TaskRequest,
        task: Task,
        revision: int,
        deliveries: int,
        reason: str,
    ) -> None:
        """The task is parked as a dead letter with ``reason`` and ends failed (unless it ended meanwhile)."""
        self._stats.failed += 1
        self._stats.dead_lettered += 1
        log.error("task %s dead-lettered after %d deliveries: %s", request.task_id, deliveries, reason)
        await self._dead_letters.park(
            DeadLetter(
                tenant=tenant,
                agent=self._agent,
                request=request,
                reason=reason,
                deliveries=deliveries,
                failed_at=time.time(),
            )
        )
        note = Message.agent_text(
            f"failed after {deliveries} deliveries: {reason}", context_id=task.context_id, task_id=task.id
        )
        failed = finish(task, TaskState.FAILED, note)
        if await self._outcomes.record(tenant, failed, revision, over_running=False):
            await self._outcomes.announce(tenant, failed)
        await msg.ack()

    async def _end(self, msg: Msg, tenant: str, ended: Task, revision: int) -> None:
        """Record ``ended`` as the outcome, count it by its state and announce it; ack the delivery."""
        if await self._outcomes.record(tenant, ended, revision):
            state = ended.status.state
            if state is TaskState.COMPLETED:
                self._stats.completed += 1
            elif state is TaskState.FAILED:
                self._stats.failed += 1
            else:
                self._stats.interrupted += 1
            await self._outcomes.announce(tenant, ended)
        else:
            # Someone else ended it meanwhile (canceled, or a slower duplicate
            # delivery completed first): theirs is the recorded outcome.
            self._stats.skipped += 1
        await msg.ack()

    async def park_malformed(self, msg: Msg, deliveries: int, exc: Exception) -> None:
        """A delivery that is not a task (or turn) is parked as a dead letter, as it came."""
        self._stats.dead_lettered += 1
        try:
            parse = subjects.parse_turn if self._turns else subjects.parse_task
            tenant, agent = parse(msg.subject)
        except InvalidSubjectToken:
            tenant, agent = "unknown", self._agent
        log.error("malformed task on %s dead-lettered: %s", msg.subject, exc)
        await self._dead_letters.park(
            DeadLetter(
                tenant=tenant,
                agent=agent,
                reason=f"malformed task: {exc}",
                deliveries=deliveries,
                failed_at=time.time(),
                payload=msg.data.decode("utf-8", "replace"),
            )
        )
        await msg.ack()


def _permanent(exc: Exception) -> bool:
    """Failures that another attempt cannot fix: the task itself is wrong.

    A name taken from the task that cannot be one (``InvalidSubjectToken``) is
    such a failure, as it is a bad request when the skill is called.
    """
    if isinstance(exc, InvalidSubjectToken):
        return True
    return isinstance(exc, RemoteError) and exc.code in (ErrorCode.BAD_REQUEST, ErrorCode.NOT_FOUND)
