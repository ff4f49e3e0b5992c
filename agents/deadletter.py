"""Dead letters: durable tasks that failed too often, parked with the reason, and replayed.

A dead letter is a message on ``hw.<tenant>.dlq.<agent>`` in the ``HW_DLQ``
stream. It carries the original task request untouched, so a replay runs
exactly what was submitted. Replaying republishes the task (with a fresh
``Nats-Msg-Id``, so de-duplication does not swallow it, and its replay count
one higher), resets its record to ``submitted`` and removes the dead letter.
A replayed task that fails again is parked again, as a new dead letter: the
letter's id counts replays, so the stream's de-duplication does not take it
for the letter parked before.
"""

from __future__ import annotations

import time

import msgspec
import nats.js.errors
from nats.js import JetStreamContext

from agents.tasks import TaskRequest, Tasks
from bus import subjects
from bus.a2a import Task
from bus.codec import Codec
from bus.envelope import Envelope
from bus.errors import MalformedPayload

__all__ = ["DeadLetter", "DeadLetters", "Parked"]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A task that will not be retried again, and why."""

    tenant: str
    agent: str
    reason: str
    deliveries: int
    failed_at: float
    request: TaskRequest | None = None
    # The undecodable body, for a task that was malformed (it cannot be replayed).
    payload: str | None = None


class Parked(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter and its sequence number in the dead-letter stream (what replay takes)."""

    seq: int
    letter: DeadLetter


class DeadLetters:
    """Writes, lists and replays dead letters."""

    def __init__(self, js: JetStreamContext, codec: Codec) -> None:
        self._js = js
        self._codec = codec

    async def park(self, letter: DeadLetter) -> None:
        """Store ``letter`` (acknowledged by JetStream before this returns)."""
        if letter.request is not None:
            # Unique per failed run of the task: a replica that parks and dies before it acks
            # parks the same letter again on redelivery, and that copy is dropped.
            request = letter.request
            message_id = f"dlq-{request.task_id}-{request.replays}-{letter.deliveries}"
        else:
            message_id = f"dlq-malformed-{time.time_ns()}"
        envelope = Envelope(message_id=message_id, tenant=letter.tenant)
        await self._js.publish(
            subjects.dead_letter(letter.tenant, letter.agent),
            self._codec.encode(letter),
            headers=envelope.to_headers(),
        )

    async def list(
        self, *, tenant: str | None = None, agent: str | None = None, limit: int = 100, after: int = 0
    ) -> list[Parked]:
        """The oldest ``limit`` dead letters after sequence ``after``, optionally of one tenant or agent."""
        subject = subjects.dead_letters_matching(tenant, agent)
        info = await self._js.stream_info(subjects.DEAD_LETTER_STREAM)
        found: list[Parked] = []
        seq = max(info.state.first_seq, after + 1) if info.state.first_seq else 0
        while seq and seq <= info.state.last_seq and len(found) < limit:
            try:
                raw = await self._js.get_msg(subjects.DEAD_LETTER_STREAM, seq=seq, next=True, subject=subject)
            except nats.js.errors.NotFoundError:
                break
            assert raw.seq is not None
            seq = raw.seq + 1
            try:
                letter = self._codec.decode(raw.data or b"", DeadLetter)
            except MalformedPayload:
                continue
            found.append(Parked(seq=raw.seq, letter=letter))
        return found

    async def replay(self, seq: int, tasks: Tasks, *, tenant: str | None = None) -> Task:
        """Run the dead letter at ``seq`` again; return its reset task record.

        Args:
            tenant: replay only a dead letter of this tenant (another's is as missing
                as one that never was).

        Raises:
            LookupError: there is no dead letter at ``seq`` (of ``tenant``).
            ValueError: the dead letter is a malformed task, which cannot run.
        """
        try:
            raw = await self._js.get_msg(subjects.DEAD_LETTER_STREAM, seq=seq)
        except nats.js.errors.NotFoundError:
            raise LookupError(f"no dead letter at sequence {seq}") from None
        letter = self._codec.decode(raw.data or b"", DeadLetter)
        if tenant is not None and letter.tenant != tenant:
            raise LookupError(f"no dead letter at sequence {seq}")
        if letter.request is None:
            raise ValueError(
                f"dead letter {seq} is a malformed task ({letter.reason}); it cannot be replayed"
            )
        task = await tasks.resubmit(letter.tenant, letter.request, msg_id=f"replay-{seq}-{time.time_ns()}")
        await self._js.delete_msg(subjects.DEAD_LETTER_STREAM, seq)
        return task
