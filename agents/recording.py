"""Recording a task's outcome over its record and announcing it to its conversation, through NATS outages.

If NATS goes away while a task's outcome is being recorded, the worker waits
for the connection to come back and then looks at the record: the write may
have gone out after all (from the connection's buffer, once reconnected), in
which case the outcome is announced as if it had been confirmed; if not, it is
written again. Only when that keeps failing with NATS back does the outage
reach the worker, which leaves the task unacked for JetStream to redeliver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.js.errors

from agents.events import ConversationEvents
from agents.records import TaskRecords
from agents.turns import Turns, end_message_id
from bus.a2a import Task, TaskState, new_id
from bus.client import Bus
from bus.outage import OUTAGES

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Attempts at recording an outcome that fail with NATS back before the task is left for redelivery
# (and the attempts go on for at least the ack wait: see Recorder.through_outages).
_RECORD_ATTEMPTS = 8


class Recorder:
    """Records and announces the outcomes of the tasks (or turns) one worker runs."""

    def __init__(
        self,
        *,
        bus: Bus,
        records: TaskRecords,
        events: ConversationEvents,
        turns: bool,
        patience: float,
    ) -> None:
        """``patience``: seconds of failing with NATS back before an outcome is left for redelivery
        (the ack wait: a redelivery would come no sooner)."""
        self._bus = bus
        self._patience = patience
        self._records = records
        self._events = events
        self._turns = turns
        self._ended = Turns(bus) if turns else None

    async def record(self, tenant: str, outcome: Task, revision: int, *, over_running: bool = True) -> bool:
        """Write the task's ``outcome`` over its record at ``revision``; True if it is the recorded one.

        A record still running by then (a retry's note, or another replica's claim
        after a stall) is written over too, unless ``over_running`` is false: this
        attempt finished, so its outcome is the one recorded. A record already
        ended is someone else's outcome (False). A record that is gone is made
        anew with the outcome. An outage is waited out, and the record then tells
        whether the write went out after all.

        Raises:
            Exception: one of :data:`~bus.outage.OUTAGES`, when writes still fail
                with NATS back (see :meth:`through_outages`).
        """

        async def attempt() -> tuple[Task, int] | None:
            if await self._records.replace(tenant, outcome, revision) is not None:
                return outcome, 0
            return await self._records.get(tenant, outcome.id)

        while True:
            found = await self.through_outages(attempt, outcome.id, "its outcome is recorded")
            if found is not None and found[0] is outcome:
                return True
            if found is None:
                # The record is gone (past the task retention, or its bucket deleted): this
                # attempt's outcome makes it anew rather than vanish with it.
                async def create() -> int | None:
                    return await self._records.create(tenant, outcome)

                if await self.through_outages(create, outcome.id, "its outcome is recorded") is not None:
                    log.warning("task %s: its record was gone; its outcome is recorded anew", outcome.id)
                    return True
                continue  # made meanwhile: read again
            if _same_outcome(found[0], outcome):
                return True  # an earlier write whose confirmation the outage swallowed
            if found[0].status.state.terminal or not over_running:
                return False
            revision = found[1]

    async def announce(self, tenant: str, outcome: Task) -> None:
        """Publish the task's outcome where its conversation's clients follow it, stored by the
        events stream before the task is acked: an end announced into a restarting server is sent again.

        A completed turn is queued for a gateway to record first, so whoever sees its end can
        wait for the record (:meth:`Turns.recorded`); a turn's end has an id of its own, so a
        redelivered turn that had ended announces it again, kept once (see :meth:`end_again`).
        """
        if self._ended is not None and outcome.status.state is TaskState.COMPLETED:
            ended = self._ended

            async def queue() -> None:
                await ended.ended(tenant, outcome)

            await self.through_outages(queue, outcome.id, "its end is queued for recording")
        # The same id on each attempt, and when a redelivery finds it ended: the stream keeps one copy.
        message_id = end_message_id(outcome.id) if self._turns else _outcome_message_id(outcome)

        async def attempt() -> None:
            await self._events.task_status(tenant, outcome, message_id=message_id, stored=True)

        try:
            await self.through_outages(attempt, outcome.id, "its outcome is announced")
        except nats.js.errors.APIError as exc:
            # The stream refused it (or a subscriber answered in its place): the record has the
            # outcome, and the event still goes out, unconfirmed.
            log.error("task %s: the events stream did not store its outcome: %s", outcome.id, exc)
            await self._events.task_status(tenant, outcome, message_id=message_id)

    async def end_again(self, tenant: str, task_id: str) -> None:
        """A task or turn that ended is delivered again: its replica may have died between recording
        the end and storing its announcement, so announce it again (the events stream keeps one copy
        within its window). A cancellation is the canceler's to announce."""
        found = await self._records.get(tenant, task_id)
        if found is None:
            return
        state = found[0].status.state
        if state.terminal and (self._turns or state in (TaskState.COMPLETED, TaskState.FAILED)):
            await self.announce(tenant, found[0])

    async def through_outages(self, attempt: Callable[[], Awaitable[T]], task_id: str, doing: str) -> T:
        """``attempt()``, again once NATS is back when an outage stops it (logged once).

        A restarted server answers before its JetStream has loaded its streams (longer on a busy
        machine), so attempts go on with NATS back for ``_RECORD_ATTEMPTS`` and at least the
        patience (the ack wait): the outcome is then stored by this replica as soon as it can be,
        not by a redelivery an ack wait later.

        Raises:
            Exception: one of :data:`~bus.outage.OUTAGES`, when it still fails with NATS back
                (after ``_RECORD_ATTEMPTS`` and the patience).
        """
        loop = asyncio.get_running_loop()
        failures = 0
        since = loop.time()
        while True:
            try:
                return await attempt()
            except OUTAGES as exc:
                failures += 1
                if failures >= _RECORD_ATTEMPTS and loop.time() - since >= self._patience:
                    raise
                if failures == 1:
                    log.warning(
                        "task %s: NATS is unreachable while %s (%s: %s); trying again once it is back",
                        task_id,
                        doing,
                        type(exc).__name__,
                        exc,
                    )
            if not self._bus.is_connected:
                # Nothing can be recorded (or redelivered) while the connection is down: the
                # patience counts from its return.
                await self._bus.until_connected()
                since = loop.time()
            await asyncio.sleep(min(1.0, 0.05 * 2**failures))


def _same_outcome(recorded: Task, outcome: Task) -> bool:
    """Whether ``recorded`` is ``outcome`` as written (its status message is unique to this write)."""
    mine, theirs = outcome.status, recorded.status
    return (
        mine.state is theirs.state
        and mine.message is not None
        and theirs.message is not None
        and mine.message.message_id == theirs.message.message_id
    )


def _outcome_message_id(outcome: Task) -> str:
    """The id the events stream de-duplicates a task's announced outcome on: an end announced again
    (see :meth:`Recorder.end_again`) is kept once, while a replayed dead letter's new end, or a
    status that is not an end (input required, again and again), is an event of its own."""
    if not outcome.status.state.terminal:
        return new_id()
    replays = (outcome.metadata or {}).get("replays", 0)
    return f"{outcome.id}.{outcome.status.state.value}.{replays}"
