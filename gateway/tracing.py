"""A server span per HTTP request, continuing the caller's W3C trace, parent of everything the turn does.

Every bus request, agent, model, Redis and Chroma span of a turn descends from
this span, so one conversation turn is one trace. With no tracer configured
the middleware steps aside (no span work on the hot path).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.telemetry import DURATION_BUCKETS
from bus.tracing import TENANT_ATTRIBUTE

__all__ = ["ServerSpans", "current_trace_id", "tag_tenant"]


def current_trace_id() -> str | None:
    """The id (32 hex digits) of the trace being recorded now, or ``None`` when tracing is off."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def tag_tenant(tenant: str) -> None:
    """Name ``tenant`` on the current span (the request's server span, once the key is known)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(TENANT_ATTRIBUTE, tenant)


class ServerSpans:
    """ASGI middleware: one ``SERVER`` span and one duration measurement per HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
    ) -> None:
        self._app = app
        self._tracing = not isinstance(tracer_provider, trace.NoOpTracerProvider | trace.ProxyTracerProvider)
        self._tracer = tracer_provider.get_tracer("hivewire.gateway")
        meter = meter_provider.get_meter("hivewire.gateway")
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._streams = meter.create_up_down_counter(
            "hivewire.gateway.event_streams",
            unit="{stream}",
            description="Server-sent event streams open now.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        status = 500
        started = time.perf_counter()
        streaming = False

        async def capture(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message):
                    streaming = True
                    self._streams.add(1)
                if self._tracing:
                    # W3C Trace Context level 2: the client learns the trace of its request.
                    context = trace.get_current_span().get_span_context()
                    if context.is_valid:
                        value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
                        message["headers"] = [*message.get("headers", []), (b"traceresponse", value.encode())]
            await send(message)

        try:
            await self._serve(scope, receive, capture, method, lambda: status, started)
        finally:
            if streaming:
                self._streams.add(-1)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        capture: Send,
        method: str,
        status_of: Callable[[], int],
        started: float,
    ) -> None:
        if not self._tracing:
            try:
                await self._app(scope, receive, capture)
            finally:
                self._measure(scope, method, status_of(), started)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        context = propagate.extract(carrier)
        with self._tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope["scheme"],
            },
            record_exception=True,
        ) as span:
            try:
                await self._app(scope, receive, capture)
            finally:
                route = _route(scope)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                status = status_of()
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                self._measure(scope, method, status, started)

    def _measure(self, scope: Scope, method: str, status: int, started: float) -> None:
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "http.response.status_code": status,
        }
        route = _route(scope)
        if route:
            attributes["http.route"] = route
        self._duration.record(time.perf_counter() - started, attributes)


def _is_event_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in start.get("headers", [])
    )


def _route(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
