"""Recent spans, kept on the bus: an OpenTelemetry exporter into a bounded JetStream stream, and its reader.

With ``OTEL_TRACES_EXPORTER=hivewire`` (alone or beside ``otlp``) every
process publishes its finished spans to ``hw.<tenant>.spans.<trace>`` (or
``hw.spans.<trace>`` for a span that worked for no tenant), kept by the
``HW_SPANS`` stream for ``max_age`` seconds and ``max_bytes`` at most, oldest
dropped first. Any process can read a trace back (the gateway's console
draws a turn as a waterfall from it) without a collector to run: the bus is
already there. A tenant's spans are filed under its name, so reading one
tenant's part of a trace is one subject filter.

The tenant of a span is its ``hivewire.tenant`` attribute: the bus sets it
on a consumer span from the message's envelope, the gateway on its server
span once the key is known, and :class:`TenantSpans` copies it from parent
to child within a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bus import subjects
from bus.client import Bus
from bus.errors import BusError, InvalidSubjectToken, MalformedPayload
from bus.settings import NatsSettings
from bus.tracing import TENANT_ATTRIBUTE

__all__ = ["SpanRecord", "SpanStoreExporter", "TenantSpans", "ensure_span_stream", "read_trace"]

log = logging.getLogger(__name__)

# OpenTelemetry's attribute values: a scalar, or a list of scalars of one type.
Attribute = str | bool | int | float | list[str | bool | int | float]


class SpanRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A finished span as the store keeps it (ids as hex, times as Unix nanoseconds)."""

    trace_id: str
    span_id: str
    name: str
    service: str
    kind: str
    start: int
    end: int
    parent_id: str | None = None
    status: str = "unset"  # unset, ok or error
    status_message: str = ""
    tenant: str | None = None
    attributes: dict[str, Attribute] = {}


def record_of(span: ReadableSpan) -> SpanRecord:
    """The record of a finished SDK span."""
    context = span.get_span_context()
    assert context is not None
    attributes = {key: _plain(value) for key, value in (span.attributes or {}).items()}
    tenant = attributes.get(TENANT_ATTRIBUTE)
    return SpanRecord(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_id=format(span.parent.span_id, "016x") if span.parent is not None else None,
        name=span.name,
        service=str(span.resource.attributes.get("service.name", "")),
        kind=span.kind.name.lower(),
        start=span.start_time or 0,
        end=span.end_time or 0,
        status=span.status.status_code.name.lower(),
        status_message=span.status.description or "",
        tenant=tenant if isinstance(tenant, str) else None,
        attributes=attributes,
    )


def _plain(value: object) -> Attribute:
    if isinstance(value, str | bool | int | float):
        return value
    return [item for item in value] if isinstance(value, tuple | list) else str(value)


class TenantSpans(SpanProcessor):
    """Gives a span its parent's tenant (within a process), so every hop of a turn is filed under it."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        parent = trace.get_current_span(parent_context)
        tenant = getattr(parent, "attributes", None)
        if tenant and TENANT_ATTRIBUTE in tenant and TENANT_ATTRIBUTE not in (span.attributes or {}):
            span.set_attribute(TENANT_ATTRIBUTE, tenant[TENANT_ATTRIBUTE])


async def ensure_span_stream(js: JetStreamContext, *, max_age: float, max_bytes: int) -> None:
    """Create the span store's stream if it is missing (an existing one keeps its limits)."""
    try:
        await js.stream_info(subjects.SPANS_STREAM)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(
            api.StreamConfig(
                name=subjects.SPANS_STREAM,
                description="Recent finished spans of every process, for reading a trace back",
                subjects=subjects.all_spans(),
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                discard=api.DiscardPolicy.OLD,
                max_age=max_age,
                max_bytes=max_bytes,
                duplicate_window=1.0,  # spans carry no message id: nothing to de-duplicate
            )
        )
    except nats.js.errors.BadRequestError:
        await js.stream_info(subjects.SPANS_STREAM)  # another process made it meanwhile


class SpanStoreExporter(SpanExporter):
    """Publishes finished spans to the span store, over a NATS connection of its own.

    The exporter runs its own event loop in a thread (the SDK calls it from its
    batch thread), connects on its first export, and publishes without waiting
    for acknowledgements: a span is worth a look, not a retry. Its own
    connection traces nothing, so exporting spans makes none.
    """

    def __init__(
        self, settings: NatsSettings, *, max_age: float, max_bytes: int, timeout: float = 5.0
    ) -> None:
        self._settings = settings
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._bus: Bus | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hivewire-spans", daemon=True)
        self._thread.start()
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        records = [record_of(span) for span in spans]
        future = asyncio.run_coroutine_threadsafe(self._publish(records), self._loop)
        try:
            future.result(self._timeout)
        except (BusError, nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
            future.cancel()
            reason = str(exc) or f"NATS did not take them within {self._timeout:g}s"
            log.warning("span store: %d spans not stored (%s)", len(records), reason)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    async def _publish(self, records: list[SpanRecord]) -> None:
        if self._bus is None:
            bus = await Bus.connect(
                self._settings,
                name="hivewire-spans",
                tracer_provider=trace.NoOpTracerProvider(),
                meter_provider=metrics.NoOpMeterProvider(),
            )
            try:
                await ensure_span_stream(bus.jetstream(), max_age=self._max_age, max_bytes=self._max_bytes)
            except BaseException:
                await bus.close()
                raise
            self._bus = bus
        for record in records:
            try:
                subject = subjects.span(record.trace_id, record.tenant)
            except InvalidSubjectToken:
                subject = subjects.span(record.trace_id, None)
            await self._bus.publish_bytes(subject, self._bus.codec.encode(record))
        await self._bus.flush()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bus is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._bus.close(), self._loop).result(self._timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
        self._loop.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


async def read_trace(bus: Bus, trace_id: str, tenant: str, *, limit: int = 2000) -> list[SpanRecord]:
    """The spans of trace ``trace_id`` filed under ``tenant``, in the order they were stored.

    Raises:
        InvalidSubjectToken: ``trace_id`` or ``tenant`` is not a valid name.
    """
    subject = subjects.span(trace_id, tenant)
    js = bus.jetstream()
    try:
        info = await js.stream_info(subjects.SPANS_STREAM)
    except nats.js.errors.NotFoundError:
        return []
    found: list[SpanRecord] = []
    seq = info.state.first_seq
    # One direct read per span, each the next on the trace's subject: a trace's spans
    # are a few dozen, and the server finds each through its subject index.
    while seq and seq <= info.state.last_seq and len(found) < limit:
        try:
            raw = await js.get_msg(subjects.SPANS_STREAM, seq=seq, next=True, subject=subject)
        except nats.js.errors.NotFoundError:
            break
        assert raw.seq is not None
        seq = raw.seq + 1
        with contextlib.suppress(MalformedPayload):  # not a span: written by something else
            found.append(bus.codec.decode(raw.data or b"", SpanRecord))
    return found
