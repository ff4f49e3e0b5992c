"""What a running task does after a while, on its worker's one event-loop timer: beats, late claims."""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
from nats.aio.msg import Msg

from bus.deadlines import Deadlines

__all__ = ["ProgressBeat", "Timed", "shared_timer"]


class Timed:
    """Something a task does after a while, on the worker's shared timer (see :class:`Deadlines`)."""

    def fire(self) -> None:
        raise NotImplementedError


def shared_timer() -> Deadlines[Timed]:
    """One timer on the running event loop for the timed work of all of a worker's tasks."""
    return Deadlines(asyncio.get_running_loop(), _fire)


def _fire(timed: Timed) -> None:
    timed.fire()


class ProgressBeat(Timed):
    """Tells JetStream a running task is alive every ``interval`` seconds, so it is not redelivered.

    On the worker's shared timer, not a task or a timer of its own: most tasks
    finish before the first beat is due.
    """

    def __init__(self, msg: Msg, interval: float, timers: Deadlines[Timed]) -> None:
        self._msg = msg
        self._interval = interval
        self._timers = timers
        self._sending: asyncio.Task[None] | None = None
        timers.add(self, interval)

    def fire(self) -> None:
        self._sending = asyncio.get_running_loop().create_task(self._send())
        self._timers.add(self, self._interval)

    async def _send(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.in_progress()

    def stop(self) -> None:
        self._timers.discard(self)
