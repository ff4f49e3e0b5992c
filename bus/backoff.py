"""Reconnect backoff: exponential delays with jitter, so a restarted server is not stampeded."""

from __future__ import annotations

import random
from typing import Any

from nats.aio.client import Server

__all__ = ["Backoff"]


class Backoff:
    """Chooses the next server to reconnect to and how long to wait first.

    The wait doubles with each failed attempt at that server, from ``initial``
    up to ``maximum`` seconds, and a random half of it is jitter: replicas that
    lost the same server spread their reconnects out instead of arriving at once.
    nats-py calls an instance as its ``reconnect_to_server_handler``.
    """

    def __init__(self, *, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._rng = rng or random.Random()

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait before the next attempt, after ``failed_attempts`` failures."""
        ceiling: float = min(self.maximum, self.initial * 2.0 ** min(failed_attempts, 32))
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def __call__(self, servers: list[Server], server_info: dict[str, Any]) -> tuple[Server | None, float]:
        server = min(servers, key=lambda s: s.reconnects)
        return server, self.delay(server.reconnects)
