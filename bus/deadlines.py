"""Many deadlines on one event-loop timer: what services and requesters use per request."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K")


class Deadlines(Generic[K]):
    """The deadlines of many requests on one event-loop timer (used by services and requesters).

    A timer per request costs more than the rest of its deadline handling (in
    uvloop each is a libuv handle: allocated, started, stopped, closed), and
    most requests end long before their deadline. Here a request is a dict
    entry, removed when it ends, and one timer is armed for the earliest
    deadline; when it fires, what is due expires and it is armed for the next.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[K], object]) -> None:
        self._loop = loop
        self._expire = expire
        self._due: dict[K, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf

    def add(self, key: K, delay: float) -> None:
        """Call ``expire(key)`` in ``delay`` seconds, unless ``key`` is discarded first."""
        when = self._loop.time() + delay
        self._due[key] = when
        if when < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._at = when
            self._timer = self._loop.call_at(when, self._fire)

    def discard(self, key: K) -> None:
        """Forget ``key``'s deadline."""
        self._due.pop(key, None)

    def _fire(self) -> None:
        # Loop timers have millisecond resolution: what falls due within one is due now.
        horizon = self._loop.time() + 0.001
        due = [key for key, when in self._due.items() if when <= horizon]
        for key in due:
            del self._due[key]
        self._timer, self._at = None, math.inf
        if self._due:
            self._at = min(self._due.values())
            self._timer = self._loop.call_at(self._at, self._fire)
        for key in due:
            self._expire(key)
