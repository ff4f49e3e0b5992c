"""Recording streamed turns: each turn its agent ended, written to its conversation's history and usage.

A streamed turn is run by its agent (:mod:`agents.turns`), not by the gateway
that took it, which may be gone by the turn's end. The replica that completes
a turn queues it, as it ended, on ``hw.<tenant>.ended.<turn>``; every gateway
takes a share of those from one durable consumer (``hw-ended-turns``), so each
turn is recorded by one replica, whichever gateway started it. A turn is
acknowledged once recorded: one whose recording fails (Redis away) or whose
gateway dies meanwhile is recorded again later (at least once: a gateway that
dies between the write and the acknowledgement has the turn recorded again,
which the history takes once, by the turn's message id, and usage counts
twice).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable

import nats.errors
from nats.aio.msg import Msg
from nats.js import api

from bus import subjects
from bus.a2a import Task
from bus.client import Bus
from bus.consumer import PullRunner, add_shared_consumer
from bus.errors import InvalidSubjectToken, MalformedPayload
from gateway.turns import Conversations

__all__ = ["TurnRecorder"]

log = logging.getLogger(__name__)

# Ended turns one replica records at once; the ack wait after which another takes one over.
_IN_HAND = 32
_ACK_WAIT = 30.0
# Attempts at recording one turn, and the first delay between them (it doubles, up to a minute).
_ATTEMPTS = 10
_RETRY_DELAY = 1.0


class TurnRecorder:
    """This gateway replica's share of recording ended turns."""

    def __init__(self, bus: Bus, conversations: Conversations) -> None:
        self._bus = bus
        self._conversations = conversations
        self._runner: PullRunner | None = None
        self.recorded = 0

    async def start(self) -> None:
        """Bind to the shared consumer (creating it) and start recording."""
        js = self._bus.jetstream()
        config = api.ConsumerConfig(
            durable_name=subjects.ended_turns_consumer(),
            filter_subject=subjects.all_tenants_ended_turns(),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=_ACK_WAIT,
            max_deliver=-1,  # counted here, so the last attempt can give up cleanly
            max_ack_pending=10 * _IN_HAND,
        )
        await add_shared_consumer(js, subjects.TASKS_STREAM, config)
        self._runner = PullRunner(
            js,
            subjects.TASKS_STREAM,
            subjects.ended_turns_consumer(),
            limit=_IN_HAND,
            handle=self._handle,
        )
        await self._runner.start()

    async def stop(self, grace: float) -> None:
        """Take no more turns; give recordings in flight ``grace`` seconds (the rest go to others)."""
        if self._runner is not None:
            await self._runner.stop(grace)

    async def _handle(self, msg: Msg) -> None:
        try:
            tenant = subjects.parse_ended_turn(msg.subject)
            turn = self._bus.codec.decode(msg.data, Task)
        except (InvalidSubjectToken, MalformedPayload) as exc:
            log.error("dropped an ended turn on %s that does not decode: %s", msg.subject, exc)
            await _settle(msg.ack())
            return
        try:
            await self._conversations.record_turn(tenant, turn)
        except Exception as exc:  # a worker loop: a turn that cannot be recorded now is tried again
            deliveries = msg.metadata.num_delivered or 1
            if deliveries >= _ATTEMPTS:
                log.exception("turn %s not recorded after %d attempts; dropped", turn.id, deliveries)
                await _settle(msg.ack())
            else:
                log.warning("recording turn %s failed (attempt %d): %s", turn.id, deliveries, exc)
                await _settle(msg.nak(delay=min(60.0, _RETRY_DELAY * 2 ** (deliveries - 1))))
            return
        self.recorded += 1
        await _settle(msg.ack())


async def _settle(acknowledging: Awaitable[None]) -> None:
    """Send an ack or a nak; one lost with the connection is redelivered after the ack wait."""
    with contextlib.suppress(nats.errors.Error):
        await acknowledging
