"""Durable task records: one A2A ``Task`` per task in the ``hw_tasks`` bucket, changed by compare-and-set.

Every change of a task's state is a key-value update conditioned on the
revision the writer read (the first one a create): of two writers that race,
one wins and the other sees the record changed, which is what guarantees a
single recorded outcome when a task runs twice (at-least-once delivery).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from agents.errors import TaskNotFound
from bus import subjects
from bus.a2a import Task
from bus.codec import Codec
from bus.errors import RequestTimeout
from bus.jetstream_fast import FastKeyValue

__all__ = ["TaskRecords"]


class TaskRecords:
    """The records of durable tasks, with compare-and-set transitions."""

    def __init__(self, kv: KeyValue, codec: Codec) -> None:
        self._kv = kv
        # Every transition reads and writes on the hot path of a task: lean ones.
        self._writes = FastKeyValue(kv)
        self._codec = codec

    async def get(self, tenant: str, task_id: str) -> tuple[Task, int] | None:
        """The task and its record revision, or ``None`` if there is no such task."""
        found = await self._writes.get(subjects.task_record_key(tenant, task_id))
        if found is None:
            return None
        value, revision = found
        return self._codec.decode(value, Task), revision

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
        *,
        interrupted: bool = False,
    ) -> Task:
        """Wait until the task reaches a terminal state (with ``interrupted``, or waits for input)
        and return it.

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
                        if _settled(latest, interrupted):
                            return latest
                    continue
                if not entry.value:  # deleted or purged meanwhile
                    continue
                latest = self._codec.decode(entry.value, Task)
                if _settled(latest, interrupted):
                    return latest
        finally:
            await watcher.stop()


def _settled(task: Task, interrupted: bool) -> bool:
    state = task.status.state
    return state.terminal or (interrupted and state.interrupted)
