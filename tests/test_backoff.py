"""Reconnect backoff: waits double per failed attempt, are capped, and are jittered."""

from __future__ import annotations

import random
from urllib.parse import urlparse

import pytest
from nats.aio.client import Server

from bus.backoff import Backoff


def test_the_wait_doubles_up_to_the_maximum_with_up_to_half_jitter() -> None:
    backoff = Backoff(initial=0.5, maximum=8.0, rng=random.Random(7))
    for attempts, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0), (500, 8.0)]:
        waits = [backoff.delay(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # really jittered


def test_the_least_tried_server_is_chosen_next() -> None:
    tried = Server(uri=urlparse("nats://a:4222"), reconnects=3)
    fresh = Server(uri=urlparse("nats://b:4222"), reconnects=0)
    server, wait = Backoff(initial=1, maximum=10)([tried, fresh], {})
    assert server is fresh
    assert 0.5 <= wait <= 1


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=5, maximum=1)
