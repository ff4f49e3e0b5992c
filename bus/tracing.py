"""OpenTelemetry for the bus: producer/consumer spans, trace context in NATS headers, counters.

Spans follow the OpenTelemetry messaging semantic conventions. The W3C
``traceparent``/``tracestate`` of the sending span is injected into the message
headers and extracted by the receiver, so a request that crosses processes is one
trace with correctly parented spans.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bus.envelope import Header
from bus.telemetry import DURATION_BUCKETS

__all__ = ["TENANT_ATTRIBUTE", "BusTelemetry"]

# The span attribute naming the tenant a span worked for (the span store files spans by it).
TENANT_ATTRIBUTE = "hivewire.tenant"

_SYSTEM = "nats"
# Reusable: entering a nullcontext has no side effects.
_NO_SPAN: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


class BusTelemetry:
    """The tracer and instruments of one bus connection.

    Tracing is on when a real tracer provider is given, or set globally before
    the bus connects. With none (OpenTelemetry's default no-op proxy) spans are
    skipped entirely: the no-op API still costs microseconds per message, a
    large share of a request on the hot path. The per-message duration is
    likewise recorded only when a meter provider is given or set globally.

    Args:
        tracer_provider: where spans go; the global provider when ``None``.
        meter_provider: where metrics go; the global provider when ``None``.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracing = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        self._tracer = provider.get_tracer("hivewire.bus")
        meters = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        # The same for the per-message duration: recorded only where a meter provider collects it.
        self.metering = not isinstance(meters, metrics.NoOpMeterProvider | _ProxyMeterProvider)
        self.meter_provider = meters
        meter = meters.get_meter("hivewire.bus")
        self._dropped = meter.create_counter(
            "hivewire.bus.messages.dropped",
            unit="{message}",
            description="Messages received but not handled, by reason.",
        )
        self._failed = meter.create_counter(
            "hivewire.bus.handler.errors",
            unit="{message}",
            description="Messages whose handler raised, by error type.",
        )
        self._duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Time spent handling one received message.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.server_address: str | None = None
        self.server_port: int | None = None

    def start_send(
        self,
        operation: str,
        subject: str,
        headers: MutableMapping[str, str],
        *,
        message_id: str,
        size: int,
    ) -> Span:
        """Start a producer span for sending one message and inject its context into ``headers``.

        The caller ends the span; use :meth:`send_span` when the send fits in one block.
        """
        if not self.tracing:
            return trace.INVALID_SPAN
        span = self._tracer.start_span(
            f"{operation} {subject}",
            kind=SpanKind.PRODUCER,
            attributes=self._attributes("send", operation, subject, message_id, size),
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return span

    def send_span(
        self,
        operation: str,
        subject: str,
        headers: MutableMapping[str, str],
        *,
        message_id: str,
        size: int,
    ) -> AbstractContextManager[Span]:
        """A producer span around sending one message; records any exception that escapes."""
        if not self.tracing:
            return _NO_SPAN
        span = self.start_send(operation, subject, headers, message_id=message_id, size=size)
        return trace.use_span(span, end_on_exit=True)

    def process_span(
        self,
        subject: str,
        headers: Mapping[str, str] | None,
        *,
        message_id: str,
        size: int,
        queue: str | None,
    ) -> AbstractContextManager[Span]:
        """A consumer span around handling one message, parented by the sender's context."""
        if not self.tracing:
            return _NO_SPAN
        return self._process_span(subject, headers, message_id=message_id, size=size, queue=queue)

    @contextmanager
    def _process_span(
        self,
        subject: str,
        headers: Mapping[str, str] | None,
        *,
        message_id: str,
        size: int,
        queue: str | None,
    ) -> Iterator[Span]:
        parent = propagate.extract(headers) if headers else None
        attributes = self._attributes("process", "process", subject, message_id, size)
        if queue:
            attributes["messaging.consumer.group.name"] = queue
        tenant = headers.get(Header.TENANT) if headers else None
        if tenant:
            attributes[TENANT_ATTRIBUTE] = tenant
        with self._tracer.start_as_current_span(
            f"process {subject}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def record_error(self, span: Span, exc: BaseException, *, subject: str) -> None:
        """Mark ``span`` failed with ``exc`` and count the failure."""
        error_type = type(exc).__qualname__
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        span.set_attribute("error.type", error_type)
        self._failed.add(1, {"messaging.destination.name": subject, "error.type": error_type})

    def record_drop(self, subject: str, reason: str) -> None:
        """Count a received message that was not handled."""
        self._dropped.add(1, {"messaging.destination.name": subject, "reason": reason})

    def record_duration(self, subject: str, seconds: float) -> None:
        """Record how long handling one message took."""
        self._duration.record(seconds, {"messaging.destination.name": subject})

    def _attributes(
        self, op_type: str, op_name: str, subject: str, message_id: str, size: int
    ) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": op_type,
            "messaging.operation.name": op_name,
            "messaging.destination.name": subject,
            "messaging.message.id": message_id,
            "messaging.message.body.size": size,
        }
        if self.server_address is not None:
            attributes["server.address"] = self.server_address
        if self.server_port is not None:
            attributes["server.port"] = self.server_port
        return attributes
