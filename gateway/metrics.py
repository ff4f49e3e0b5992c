"""The gateway's own instruments: how long turns take, how soon their first token comes, who is refused.

HTTP request durations and open event streams are measured by
:class:`gateway.tracing.ServerSpans`; this holds what only the routes know.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import metrics

from bus.telemetry import DURATION_BUCKETS

__all__ = ["GatewayMetrics", "TurnClock"]


class GatewayMetrics:
    """Turn latency, time to first token and refusals (429s) of one gateway process."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter("hivewire.gateway")
        self._duration = meter.create_histogram(
            "hivewire.turn.duration",
            unit="s",
            description="Time from a user's message to the agent's whole reply, by agent and outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._first_token = meter.create_histogram(
            "hivewire.turn.time_to_first_token",
            unit="s",
            description="Time from a user's message to the first piece of the reply on its event stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._throttled = meter.create_counter(
            "hivewire.gateway.throttled",
            unit="{request}",
            description="Requests refused with 429, by tenant and reason (rate, budget).",
        )

    def turn(self, agent: str, skill: str) -> TurnClock:
        """A clock for one turn, started now."""
        return TurnClock(self, {"agent": agent, "skill": skill})

    def throttled(self, tenant: str, reason: str) -> None:
        """Count a request refused with 429: ``rate`` (requests per second) or ``budget`` (daily tokens)."""
        self._throttled.add(1, {"tenant": tenant, "reason": reason})


class TurnClock:
    """Times one turn: its first token (once) and its end."""

    def __init__(self, metrics: GatewayMetrics, attributes: Mapping[str, str]) -> None:
        self._metrics = metrics
        self._attributes = attributes
        self._started = time.perf_counter()
        self._first = False

    def first_token(self) -> None:
        """The reply's first piece went to the client (later calls do nothing)."""
        if not self._first:
            self._first = True
            self._metrics._first_token.record(time.perf_counter() - self._started, self._attributes)

    def end(self, error: BaseException | None = None) -> None:
        """The turn ended, with its reply or with ``error``."""
        attributes = dict(self._attributes)
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
        self._metrics._duration.record(time.perf_counter() - self._started, attributes)
