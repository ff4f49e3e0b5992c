"""Claiming a delivered task's record for this replica: ``working``, at once or once it has run a while.

A first delivery of a task queued after the worker began hearing
cancellations runs without a claim first (its record is surely as queued, see
:meth:`Claims.untouched`); its ``working`` record is written only if it is
still running after a moment (:class:`LateClaim`). Any other delivery claims
the record before it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from agents.events import ConversationEvents
from agents.records import TaskRecords
from agents.tasks import TaskRequest, finish
from agents.timers import Timed
from agents.turns import restart_note
from bus.a2a import Message, Task, TaskState
from bus.deadlines import Deadlines

__all__ = ["Claim", "Claims", "LateClaim"]

# Claims a task's record (as read, at its revision) for this replica.
Claim = Callable[[Task, int], Coroutine[Any, Any, tuple[Task | None, int]]]

# Task ids of cancellations this worker remembers (a cancellation is rare; a task
# canceled long before it is fetched is claimed with a read instead).
_CANCELS_REMEMBERED = 10_000


class Claims:
    """Claims the records of the tasks (or turns) one worker is handed, as this replica's attempts at them."""

    def __init__(
        self,
        *,
        agent: str,
        instance: str,
        records: TaskRecords,
        events: ConversationEvents,
        turns: bool,
    ) -> None:
        self._agent = agent
        self._instance = instance
        self._records = records
        self._events = events
        self._turns = turns
        # Cancellations heard, oldest first, and the last task queued before we listened.
        self._canceled: dict[str, None] = {}
        self._fresh_after = 2**63

    def listening_since(self, sequence: int) -> None:
        """From now on, cancellations of tasks queued after stream sequence ``sequence`` are heard."""
        self._fresh_after = sequence

    def canceled(self, task_id: str) -> None:
        """A cancellation of ``task_id`` was heard."""
        # Remembered so a task fetched after its cancellation does not start (see untouched).
        self._canceled[task_id] = None
        if len(self._canceled) > _CANCELS_REMEMBERED:
            del self._canceled[next(iter(self._canceled))]

    def untouched(self, sequence: int, request: TaskRequest, deliveries: int) -> bool:
        """Whether the task's record is surely as queued, so it can run without a claim first.

        True for a first delivery queued after this worker began hearing
        cancellations, and not canceled since: the record is then as the
        request says (none, or a replay's at its revision), since any other
        change of a fresh task is a cancellation, and those are broadcast to us.
        """
        return deliveries == 1 and sequence > self._fresh_after and request.task_id not in self._canceled

    def working(self, task: Task, deliveries: int) -> Task:
        """``task`` as this replica's ``deliveries``-th attempt at it is running."""
        if self._turns and deliveries > 1:
            # Published before the turn runs again: the client's marker to drop what it had.
            note = restart_note(task, deliveries)
        else:
            note = Message.agent_text(
                f"{self._agent} is working on it (delivery {deliveries})",
                context_id=task.context_id,
                task_id=task.id,
            )
        return self.attempt(finish(task, TaskState.WORKING, note), deliveries)

    def attempt(self, task: Task, deliveries: int) -> Task:
        """``task`` marked as this replica's ``deliveries``-th attempt at it (its metadata)."""
        return msgspec.structs.replace(
            task, metadata={**(task.metadata or {}), "deliveries": deliveries, "instance": self._instance}
        )

    def claim_from(self, tenant: str, request: TaskRequest, deliveries: int) -> Claim:
        """:meth:`claim` of the task, from its record as read (for a :class:`LateClaim`)."""

        async def claim(task: Task, revision: int) -> tuple[Task | None, int]:
            return await self.claim(tenant, request, deliveries, found=(task, revision))

        return claim

    async def claim(
        self,
        tenant: str,
        request: TaskRequest,
        deliveries: int,
        *,
        found: tuple[Task, int] | None = None,
    ) -> tuple[Task | None, int]:
        """Move the task's record to ``working``; ``None`` if it already ended (or was canceled)."""
        if found is None:
            # Usually the record is as queued (none yet): claim it by that revision, unread.
            found = (request.submitted(), request.revision)
        while True:
            if found is None:
                found = await self._records.get(tenant, request.task_id)
            if found is None:
                # Gone meanwhile (expired, say): record it afresh, then claim that.
                await self._records.create(tenant, request.submitted())
                continue
            task, revision = found
            if task.status.state.terminal:
                return None, revision
            working = self.working(task, deliveries)
            new_revision = await self._records.replace(tenant, working, revision)
            if new_revision is not None:
                await self._events.task_status(tenant, working)
                return working, new_revision
            found = None


class LateClaim(Timed):
    """Writes a running task's ``working`` record only once it has run for ``delay`` seconds.

    Until then the record stays as queued (none yet, usually), at the revision
    the task was queued with, and the outcome is written over that: a
    cancellation meanwhile still makes the outcome's compare-and-set fail, so
    it is never recorded twice.
    """

    def __init__(
        self,
        claim: Claim,
        task: Task,
        revision: int,
        delay: float,
        timers: Deadlines[Timed],
    ) -> None:
        self._claim = claim
        self._task = task
        self._revision = revision
        self._timers = timers
        self._writing: asyncio.Task[tuple[Task | None, int]] | None = None
        timers.add(self, delay)

    def fire(self) -> None:
        self._writing = asyncio.get_running_loop().create_task(self._claim(self._task, self._revision))

    async def settle(self) -> tuple[Task, int]:
        """The task and record revision to write the outcome over (after any write in flight)."""
        self._timers.discard(self)
        if self._writing is not None:
            task, revision = await self._writing
            self._writing = None
            if task is not None:
                self._task, self._revision = task, revision
        return self._task, self._revision

    def abandon(self) -> None:
        """Write nothing more (the task was canceled or released)."""
        self._timers.discard(self)
        if self._writing is not None:
            self._writing.cancel()
            self._writing.add_done_callback(_retrieved)
            self._writing = None


def _retrieved(task: asyncio.Task[tuple[Task | None, int]]) -> None:
    if not task.cancelled():
        task.exception()
