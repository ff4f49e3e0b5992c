"""A task's next settled state, heard from its status events: how a caller waits for a task it started.

The worker announces every change of a task's state on its conversation's
events subject (after recording it). Listening there with a plain
subscription, set up before the task is submitted or continued, costs a
subscription and nothing more, where watching the task's record costs a
JetStream consumer per wait. The record stays the truth: once the event
comes, the caller reads it. Should an event be lost (the connection dropped
meanwhile), the record is read again every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from msgspec import UnsetType
from nats.aio.msg import Msg

from agents.tasks import Tasks
from bus import subjects
from bus.a2a import StreamResponse, Task, TaskState
from bus.client import Bus, Listening
from bus.errors import MalformedPayload

__all__ = ["Outcome"]

# How often the record is read while no event has come (a lost one is found this late at most).
_POLL = 5.0


class Outcome:
    """Waits for one task to end (or, with ``interrupted``, to wait for input). Use as an async context
    manager entered before the task is submitted or continued."""

    def __init__(
        self, bus: Bus, tasks: Tasks, tenant: str, context_id: str, task_id: str, *, interrupted: bool
    ) -> None:
        self._bus = bus
        self._tasks = tasks
        self._tenant = tenant
        self._subject = subjects.conversation_events(tenant, context_id)
        self._task_id = task_id
        self._interrupted = interrupted
        self._settled = asyncio.Event()
        self._listening: Listening | None = None

    async def __aenter__(self) -> Outcome:
        self._listening = await self._bus.listen(self._subject, self._hear)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._listening is not None:
            await self._listening.close()

    async def wait(self, task: Task, *, timeout: float) -> Task:
        """The task once settled, or as it stands after ``timeout`` seconds (``task``: as started)."""
        if self._done(task.status.state):
            return task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), min(remaining, _POLL))
            task = await self._tasks.get(self._tenant, self._task_id)
            if self._done(task.status.state):
                return task
            self._settled.clear()
        return task

    def _hear(self, msg: Msg) -> None:
        try:
            event = self._bus.codec.decode(msg.data, StreamResponse)
        except MalformedPayload:
            return
        update = event.status_update
        if isinstance(update, UnsetType) or update.task_id != self._task_id:
            return
        if self._done(update.status.state):
            self._settled.set()

    def _done(self, state: TaskState) -> bool:
        return state.terminal or (self._interrupted and state.interrupted)
