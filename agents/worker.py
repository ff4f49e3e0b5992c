"""The durable side of an agent: pull tasks from its work queue, run them, ack only on success.

Replicas of an agent share one durable consumer on ``HW_TASKS``. A task is
acked after its outcome is recorded, so a replica that dies mid-task (even by
``kill -9``) leaves it unacked and JetStream redelivers it to another replica
once ``task_ack_wait`` passes without a progress beat. A handler failure is
retried with exponential delays; at the ``task_max_deliveries``-th failed
delivery the task is parked in the dead-letter stream with the reason.

If NATS goes away while a task's outcome is being recorded, the outage is
waited out (see :mod:`agents.recording`). Only when writes keep failing with
NATS back is the task left unacked, logged once, for JetStream to redeliver
after the ack wait.

The same worker runs an agent's streamed conversation turns (``turns=True``,
see :mod:`agents.turns`) from a consumer of their own, with three differences:
a turn that fails ends at once (failed, with the error; it is not retried nor
dead-lettered, since its chunks went out already), a redelivered turn starts
with a restart marker, and a completed turn is queued for a gateway to record
before its end is announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from agents.claims import Claims, LateClaim
from agents.deadletter import DeadLetters
from agents.endings import Endings
from agents.errors import InputRequired
from agents.events import ConversationEvents
from agents.recording import Recorder
from agents.settings import AgentSettings
from agents.tasks import TaskCancel, TaskRecords, TaskRequest
from agents.timers import ProgressBeat, Timed, shared_timer
from bus import subjects
from bus.a2a import Message, Task
from bus.client import Bus
from bus.consumer import PullConsumer
from bus.deadlines import Deadlines
from bus.envelope import Envelope
from bus.errors import ErrorCode, InvalidSubjectToken, MalformedPayload, RemoteError
from bus.outage import OUTAGES
from bus.service import Request, Service

__all__ = ["TaskWorker", "WorkerStats"]

log = logging.getLogger(__name__)

# Runs one task's skill and returns the reply message.
Invoke = Callable[[str, TaskRequest, Envelope], Awaitable[Message]]


@dataclass(slots=True)
class WorkerStats:
    """What a worker has done since it started."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    released: int = 0
    interrupted: int = 0
    in_flight: int = 0
    # Tasks whose outcome could not be recorded because NATS was unreachable (left for redelivery).
    unrecorded: int = 0


class _Why:
    """Why a running task was cancelled."""

    CANCELED = "canceled"
    SHUTDOWN = "shutdown"


class TaskWorker:
    """Runs one agent's durable tasks in this replica."""

    def __init__(
        self,
        *,
        agent: str,
        instance: str,
        bus: Bus,
        settings: AgentSettings,
        records: TaskRecords,
        events: ConversationEvents,
        dead_letters: DeadLetters,
        invoke: Invoke,
        turns: bool = False,
    ) -> None:
        """Args:
        turns: run the agent's streamed conversation turns instead of its durable tasks.
        """
        self.agent = agent
        self.instance = instance
        self.stats = WorkerStats()
        self._bus = bus
        self._settings = settings
        self._invoke = invoke
        self._turns = turns
        # A client waits out a crashed replica's ack wait: a turn's is shorter than a task's.
        self._ack_wait = settings.turn_ack_wait if turns else settings.task_ack_wait
        self._running: dict[str, tuple[asyncio.Task[None], list[str]]] = {}
        # Every task this worker was handed and has not finished with.
        self._active: set[asyncio.Task[None]] = set()
        self._consumer: PullConsumer | None = None
        # Late claims and progress beats of running tasks, on one event-loop timer.
        self._timers: Deadlines[Timed] = shared_timer()
        self._claims = Claims(agent=agent, instance=instance, records=records, events=events, turns=turns)
        self._outcomes = Recorder(
            bus=bus, records=records, events=events, turns=turns, patience=self._ack_wait
        )
        self._endings = Endings(
            agent=agent,
            settings=settings,
            records=records,
            dead_letters=dead_letters,
            outcomes=self._outcomes,
            stats=self.stats,
            turns=turns,
        )
        # Tasks whose handler returned and whose slot is free again (see _free_slot).
        self._recording: set[asyncio.Task[Any]] = set()
        self._cancels: Service[TaskCancel] | None = None

    async def start(self) -> None:
        """Bind to the agent's work queue (creating its consumer) and start pulling."""
        js = self._bus.jetstream()
        if self._turns:
            # A turn is interactive work: it takes the slots interactive requests take.
            durable = subjects.turn_consumer(self.agent)
            filters = [subjects.agent_turns_all_tenants(self.agent)]
            limit = self._settings.max_concurrency
        else:
            durable = subjects.task_consumer(self.agent)
            filters = subjects.agent_tasks_all_tenants(self.agent)
            limit = self._settings.task_concurrency
        config = api.ConsumerConfig(
            durable_name=durable,
            filter_subjects=filters,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            # Deliveries are counted here, not by the server: a server-side limit
            # would strand the last delivery of a crashed replica, unacked forever.
            max_deliver=-1,
            max_ack_pending=-1,
        )
        await _create_or_update_consumer(js, subjects.TASKS_STREAM, config)
        self._cancels = await self._bus.serve(subjects.all_tenants_cancels(), self._on_cancel, TaskCancel)
        # Asked after subscribing (on the same connection, so the server has the
        # subscription): a task queued later has any cancellation of it broadcast to us.
        self._claims.listening_since((await js.stream_info(subjects.TASKS_STREAM)).state.last_seq)
        self._consumer = PullConsumer(
            js,
            subjects.TASKS_STREAM,
            durable,
            limit=limit,
            on_message=self._accept,
        )
        await self._consumer.start()

    async def stop(self, *, grace: float) -> None:
        """Stop taking tasks; let running ones finish within ``grace`` seconds, release the rest."""
        if self._consumer is not None:
            # Tasks still arriving for the last pull requests are run like the others.
            await self._consumer.stop()
        if self._cancels is not None:
            await self._cancels.stop(grace=0)
        if not self._active:
            return
        _, pending = await asyncio.wait(set(self._active), timeout=grace)
        for task_id, (task, why) in list(self._running.items()):
            if task in pending:
                why.append(_Why.SHUTDOWN)
                task.cancel()
                log.warning("released task %s at shutdown; another replica will run it", task_id)
        if pending:
            await asyncio.wait(pending)

    def _accept(self, msg: Msg) -> None:
        # Delivered means delivered to us: run it even if a stop began meanwhile.
        task = asyncio.get_running_loop().create_task(self._process(msg))
        self._active.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            # _process handles outages; anything else is a bug, reported here once rather than
            # by asyncio as "Task exception was never retrieved". The task is not acked: it is redelivered.
            log.error("processing a task failed; it will be redelivered", exc_info=exc)
        self._active.discard(task)
        if task in self._recording:
            self._recording.discard(task)
        elif self._consumer is not None:
            self._consumer.done()

    def _free_slot(self) -> None:
        """The running task's handler has returned: its slot may take the next task.

        Recording the outcome and acking take a round trip to the server; the
        next task need not wait for it. At most ``_RECORDING_PER_SLOT`` times
        ``task_concurrency`` tasks are recording at once, so a slow server slows
        intake instead of piling up.
        """
        task = asyncio.current_task()
        if (
            self._consumer is not None
            and task in self._active
            and task not in self._recording
            and len(self._recording) < _RECORDING_PER_SLOT * self._settings.task_concurrency
        ):
            self._recording.add(task)
            self._consumer.done()

    async def _process(self, msg: Msg) -> None:
        deliveries, sequence = _delivery(msg)
        try:
            if self._turns:
                tenant, _ = subjects.parse_turn(msg.subject)
                # Each attempt at a turn has the time the gateway gave it.
                received = Envelope.from_headers(msg.headers)
                deadline = received.deadline
            else:
                tenant, _ = subjects.parse_task(msg.subject)
                received, deadline = None, None
            request = self._bus.codec.decode(msg.data, TaskRequest)
        except (MalformedPayload, InvalidSubjectToken) as exc:
            await self._endings.park_malformed(msg, deliveries, exc)
            return
        self.stats.in_flight += 1
        try:
            envelope = Envelope(tenant=tenant, deadline=deadline)
            telemetry = self._bus.telemetry
            if received is None or not telemetry.tracing:
                await self._run(msg, tenant, request, deliveries, sequence, envelope)
                return
            # A turn continues the trace of the gateway request that queued it.
            with telemetry.process_span(
                msg.subject,
                msg.headers,
                message_id=received.message_id,
                size=len(msg.data),
                queue=subjects.turn_consumer(self.agent),
            ):
                await self._run(msg, tenant, request, deliveries, sequence, envelope)
        except OUTAGES as exc:
            self.stats.unrecorded += 1
            log.warning(
                "task %s (delivery %d) could not be recorded (or announced): NATS was unreachable (%s: %s); "
                "left unacked, it is delivered again once NATS is back and the ack wait has passed",
                request.task_id,
                deliveries,
                type(exc).__name__,
                exc,
            )
        finally:
            self.stats.in_flight -= 1

    async def _run(
        self, msg: Msg, tenant: str, request: TaskRequest, deliveries: int, sequence: int, envelope: Envelope
    ) -> None:
        late: LateClaim | None = None
        if self._claims.untouched(sequence, request, deliveries):
            # The record is as queued: run at once, and record and announce ``working``
            # only if the task is still running after a moment (see LateClaim).
            task: Task | None = self._claims.attempt(request.submitted(), deliveries)
            revision = request.revision
            assert task is not None
            late = LateClaim(
                self._claims.claim_from(tenant, request, deliveries),
                task,
                revision,
                _RECORD_WORKING_AFTER,
                self._timers,
            )
        else:
            task, revision = await self._claims.claim(tenant, request, deliveries)
        if task is None:
            self.stats.skipped += 1
            await self._outcomes.end_again(tenant, request.task_id)
            await msg.ack()
            return
        if deliveries > self._settings.task_max_deliveries:
            reason = (
                f"delivered {deliveries - 1} times without finishing: the replicas running it "
                "crashed or stalled past the ack wait"
            )
            if self._turns:
                failure = RemoteError(ErrorCode.UNAVAILABLE, reason)
                await self._endings.turn_failed(msg, tenant, task, revision, failure)
            else:
                await self._endings.give_up(msg, tenant, request, task, revision, deliveries - 1, reason)
            return
        why: list[str] = []
        current = asyncio.current_task()
        assert current is not None
        self._running[request.task_id] = (current, why)
        # Beating until the outcome is recorded: a write that waits out an outage is not
        # redelivered to another replica meanwhile.
        beat = ProgressBeat(msg, self._ack_wait / 3, self._timers)
        try:
            await self._attempt_and_record(
                msg, tenant, request, deliveries, task, revision, late, why, envelope
            )
        finally:
            beat.stop()

    async def _attempt_and_record(
        self,
        msg: Msg,
        tenant: str,
        request: TaskRequest,
        deliveries: int,
        task: Task,
        revision: int,
        late: LateClaim | None,
        why: list[str],
        envelope: Envelope,
    ) -> None:
        try:
            reply = await self._invoke(tenant, request, envelope)
        except asyncio.CancelledError:
            if late is not None:
                late.abandon()
            if _Why.SHUTDOWN in why:
                self.stats.released += 1
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
            elif _Why.CANCELED in why:
                # The canceler already recorded the cancellation.
                self.stats.skipped += 1
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()
            else:
                raise
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is a failed attempt, recorded below
            self._free_slot()
            if late is not None:
                task, revision = await late.settle()
            if self._turns:
                await self._endings.turn_failed(msg, tenant, task, revision, exc)
            elif isinstance(exc, InputRequired):
                await self._endings.interrupted(msg, tenant, task, revision, exc)
            else:
                await self._endings.failed(msg, tenant, request, task, revision, deliveries, exc)
            return
        finally:
            self._running.pop(request.task_id, None)
        self._free_slot()
        if late is not None:
            task, revision = await late.settle()
        await self._endings.complete(msg, tenant, task, revision, reply)

    async def _on_cancel(self, request: Request[TaskCancel]) -> None:
        self._claims.canceled(request.payload.task_id)
        running = self._running.get(request.payload.task_id)
        if running is not None:
            task, why = running
            why.append(_Why.CANCELED)
            task.cancel()


# A task still running after this long gets its ``working`` record; a quicker one
# goes from ``submitted`` to its outcome in one write (its ``working`` event is sent at once).
_RECORD_WORKING_AFTER = 0.1

# Tasks whose outcome is being recorded (a round trip) may outnumber the slots by this
# much; beyond it a slot stays taken until its task's outcome is recorded.
_RECORDING_PER_SLOT = 4


def _delivery(msg: Msg) -> tuple[int, int]:
    """How many times ``msg`` has been delivered, and its stream sequence.

    Read straight from the ack subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream
    seq>...`` (or the form with a domain and account hash); nats-py's ``metadata``
    parses all of it into objects, a noticeable cost per task.
    """
    tokens = msg.reply.split(".")
    try:
        if len(tokens) == 9:
            return int(tokens[4]) or 1, int(tokens[5])
        if len(tokens) >= 12:
            return int(tokens[6]) or 1, int(tokens[7])
    except ValueError:
        pass
    metadata = msg.metadata
    return metadata.num_delivered or 1, metadata.sequence.stream


async def _create_or_update_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> None:
    # The server (2.10+) updates an existing durable consumer whose editable
    # settings (the ack wait, say) changed, so replicas converge on the newest.
    await js.add_consumer(stream, config)
