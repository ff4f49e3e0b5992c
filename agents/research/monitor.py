"""Watching research runs: metrics per run, and an alert when a run is slow, raised while it runs.

Metrics (OpenTelemetry, the process's meter provider): ``hivewire.research.runs``
by outcome, ``hivewire.research.run.duration`` (s),
``hivewire.research.tokens_per_second``, ``hivewire.research.tool_cache.hit_ratio``
and ``hivewire.research.slow_runs``, each by tenant. A run still going at its
threshold publishes an alert on its conversation's events (a status update
whose message carries ``hivewire.alert``), logs a warning and counts a slow
run, once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from opentelemetry import metrics

from agents.context import Context
from agents.research.messages import RunSummary

__all__ = ["ALERT_KEY", "Alert", "RunMetrics", "SlowRunAlert"]

log = logging.getLogger(__name__)

# Where an alert's details ride on the status message that announces it.
ALERT_KEY = "hivewire.alert"


class Alert(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Something about a run an operator should know: ``kind`` is ``slow_run``."""

    kind: str
    run: str
    agent: str
    threshold_seconds: float
    elapsed_seconds: float


class RunMetrics:
    """The research runs' instruments, made once per process."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("hivewire.research", meter_provider=meter_provider)
        self._runs = meter.create_counter("hivewire.research.runs", description="Research runs by outcome")
        self._duration = meter.create_histogram(
            "hivewire.research.run.duration",
            unit="s",
            description="Wall time of research runs",
            explicit_bucket_boundaries_advisory=[0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300],
        )
        self._rate = meter.create_histogram(
            "hivewire.research.tokens_per_second",
            unit="{token}/s",
            description="Model tokens of a run (every agent's) over its wall time",
            explicit_bucket_boundaries_advisory=[10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
        )
        self._hit_ratio = meter.create_histogram(
            "hivewire.research.tool_cache.hit_ratio",
            description="Share of a run's tool calls the cache answered",
            explicit_bucket_boundaries_advisory=[0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0],
        )
        self._slow = meter.create_counter(
            "hivewire.research.slow_runs", description="Runs that passed their slow-run threshold"
        )

    def finished(self, tenant: str, summary: RunSummary) -> None:
        """Record a run that ended (``outcome``: completed, budget or deadline)."""
        labels = {"tenant": tenant}
        self._runs.add(1, {**labels, "outcome": summary.stopped or "completed"})
        self._duration.record(summary.seconds, labels)
        if summary.input_tokens + summary.output_tokens:
            self._rate.record(summary.tokens_per_second, labels)
        if summary.tool_calls:
            self._hit_ratio.record(summary.hit_ratio, labels)

    def slow(self, tenant: str) -> None:
        self._slow.add(1, {"tenant": tenant})


class SlowRunAlert:
    """Raises the slow-run alert if the run is still going ``threshold`` seconds after it started."""

    def __init__(self, ctx: Context, *, run: str, threshold: float, metrics: RunMetrics) -> None:
        self.raised = False
        self._ctx = ctx
        self._run = run
        self._threshold = threshold
        self._metrics = metrics
        self._started = time.monotonic()
        self._raising: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(threshold, self._fire)

    def _fire(self) -> None:
        self._raising = asyncio.get_running_loop().create_task(self._raise())

    async def _raise(self) -> None:
        self.raised = True
        elapsed = time.monotonic() - self._started
        self._metrics.slow(self._ctx.tenant)
        log.warning(
            "research run %s of tenant %s is slow: still running after %.1f s (threshold %g s)",
            self._run,
            self._ctx.tenant,
            elapsed,
            self._threshold,
        )
        alert = Alert(
            kind="slow_run",
            run=self._run,
            agent=self._ctx.agent,
            threshold_seconds=self._threshold,
            elapsed_seconds=round(elapsed, 3),
        )
        await self._ctx.emit_status(
            f"alert: this research run is slow (still running after {self._threshold:g} s)",
            metadata={ALERT_KEY: msgspec.to_builtins(alert)},
        )

    async def close(self) -> None:
        """The run ended: no alert from now on (one being raised is published first)."""
        self._timer.cancel()
        if self._raising is not None:
            await self._raising
