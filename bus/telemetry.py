"""Process telemetry: OpenTelemetry tracer and meter providers configured from the ``OTEL_*`` variables.

A process entry point calls :func:`start_telemetry` once, passes the providers
down to whatever it builds (``Bus.connect``, ``Resources.from_settings``) and
calls :meth:`Telemetry.shutdown` last, after draining, so buffered spans are
sent. Nothing here touches OpenTelemetry's global providers unless asked.

With no exporter chosen the providers are OpenTelemetry's no-op ones and the SDK
is not even imported: :class:`~bus.tracing.BusTelemetry` recognises them and
skips span work on the hot path. Exporter modules are imported only when chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace

from bus.errors import BusError
from bus.settings import NatsSettings, TelemetrySettings

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from prometheus_client import CollectorRegistry

__all__ = [
    "DURATION_BUCKETS",
    "METRICS_EXPORTERS",
    "TRACES_EXPORTERS",
    "Telemetry",
    "TelemetryConfigError",
    "start_telemetry",
]

TRACES_EXPORTERS = ("otlp", "console", "hivewire", "none")
METRICS_EXPORTERS = ("otlp", "console", "prometheus", "none")
# The only protocol of the OTLP exporter we ship (opentelemetry-exporter-otlp-proto-http).
_OTLP_PROTOCOL = "http/protobuf"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Bucket bounds of every duration histogram, in seconds (OpenTelemetry's semantic conventions for
HTTP and messaging durations; the SDK's default bounds are for milliseconds)."""


class TelemetryConfigError(BusError, ValueError):
    """A telemetry variable has a value this process cannot honour."""

    def __init__(self, variable: str, value: object, reason: str) -> None:
        self.variable = variable
        self.value = value
        self.reason = reason
        super().__init__(f"{variable}={value!r}: {reason}")


class Telemetry:
    """The tracer and meter providers of one process, and what it takes to shut them down.

    ``tracer_provider`` and ``meter_provider`` are SDK providers when something is
    exported, else OpenTelemetry's no-op providers. Build it with :func:`start_telemetry`.
    """

    def __init__(
        self,
        *,
        service_name: str,
        traces_exporters: tuple[str, ...] = (),
        metrics_exporters: tuple[str, ...] = (),
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        registry: CollectorRegistry | None = None,
        metrics_address: tuple[str, int] | None = None,
        closers: list[Callable[[], object]] | None = None,
    ) -> None:
        self.service_name = service_name
        self.traces_exporters = traces_exporters
        self.metrics_exporters = metrics_exporters
        self.tracer_provider = tracer_provider if tracer_provider is not None else trace.NoOpTracerProvider()
        self.meter_provider = meter_provider if meter_provider is not None else metrics.NoOpMeterProvider()
        self.metrics_address = metrics_address
        self._registry = registry
        self._closers = closers or []

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded and exported."""
        return not isinstance(self.tracer_provider, trace.NoOpTracerProvider)

    @property
    def metrics_url(self) -> str | None:
        """Where this process serves ``/metrics`` itself (``HIVEWIRE_METRICS_PORT``), if it does."""
        if self.metrics_address is None:
            return None
        host, port = self.metrics_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def prometheus_text(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, ``(body, content_type)``, to serve on ``/metrics``.

        Raises:
            TelemetryConfigError: the ``prometheus`` metrics exporter is not configured.
        """
        if self._registry is None:
            raise TelemetryConfigError(
                "OTEL_METRICS_EXPORTER",
                ",".join(self.metrics_exporters) or "none",
                "add prometheus to serve /metrics",
            )
        from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

        return generate_latest(self._registry), CONTENT_TYPE_PLAIN_0_0_4

    def shutdown(self) -> None:
        """Stop serving ``/metrics``, send buffered spans and metrics, release the exporters.

        Blocks up to the exporters' timeouts; calling it again does nothing.
        """
        closers, self._closers = self._closers, []
        for close in closers:
            close()

    async def aclose(self) -> None:
        """:meth:`shutdown` in a worker thread, so the event loop keeps running meanwhile."""
        await asyncio.to_thread(self.shutdown)


def start_telemetry(
    service_name: str,
    *,
    settings: TelemetrySettings | None = None,
    default_metrics_exporter: str = "none",
    set_global: bool = False,
    nats: NatsSettings | None = None,
) -> Telemetry:
    """Build the process's providers from ``settings`` (read from the environment when ``None``).

    Args:
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` or
            ``OTEL_RESOURCE_ATTRIBUTES`` name the service.
        default_metrics_exporter: used when ``OTEL_METRICS_EXPORTER`` is unset.
        set_global: also install the SDK providers as OpenTelemetry's global ones,
            for third-party instrumentation that reads them (once per process).
        nats: where the ``hivewire`` span store is (read from the environment when ``None``).

    Raises:
        TelemetryConfigError: an unknown exporter, an unsupported OTLP protocol, or
            the ``/metrics`` port cannot be bound.
    """
    settings = settings if settings is not None else TelemetrySettings()
    traces = _exporters("OTEL_TRACES_EXPORTER", settings.otel_traces_exporter, TRACES_EXPORTERS)
    metrics_from = ("default_metrics_exporter", default_metrics_exporter)
    if settings.otel_metrics_exporter is not None:
        metrics_from = ("OTEL_METRICS_EXPORTER", settings.otel_metrics_exporter)
    chosen_metrics = _exporters(*metrics_from, METRICS_EXPORTERS)
    if settings.hivewire_metrics_port is not None and "prometheus" not in chosen_metrics:
        chosen_metrics += ("prometheus",)
    if "otlp" in traces:
        _check_protocol(settings.otel_exporter_otlp_traces_protocol, settings, "TRACES")
    if "otlp" in chosen_metrics:
        _check_protocol(settings.otel_exporter_otlp_metrics_protocol, settings, "METRICS")
    name = settings.otel_service_name or service_name
    if settings.otel_sdk_disabled or not (traces or chosen_metrics):
        return Telemetry(service_name=name)

    resource = _resource(service_name, settings)
    name = str(resource.attributes.get("service.name", name))
    # Shut down in this order: /metrics server, spans, then metrics (whose last export may be slow).
    closers: list[Callable[[], object]] = []
    registry = server = meter_provider = tracer_provider = None
    if chosen_metrics:
        from opentelemetry.sdk.metrics import MeterProvider

        readers: list[MetricReader] = []
        if "prometheus" in chosen_metrics:
            # First: a taken port then leaves no reader threads behind.
            registry, reader, server = _prometheus(settings)
            readers.append(reader)
        readers += [_periodic_reader(exporter) for exporter in chosen_metrics if exporter != "prometheus"]
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    if server is not None:
        closers.append(server.shutdown)
        closers.append(server.server_close)
    if traces:
        from opentelemetry.sdk.trace import TracerProvider

        from bus.spanstore import TenantSpans

        # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by the SDK.
        tracer_provider = TracerProvider(resource=resource)
        # First: a span knows its tenant before any exporter sees it.
        tracer_provider.add_span_processor(TenantSpans())
        for exporter in traces:
            tracer_provider.add_span_processor(_span_processor(exporter, settings, nats))
        closers.append(tracer_provider.shutdown)
    if meter_provider is not None:
        closers.append(meter_provider.shutdown)
    if set_global:
        if tracer_provider is not None:
            trace.set_tracer_provider(tracer_provider)
        if meter_provider is not None:
            metrics.set_meter_provider(meter_provider)
    return Telemetry(
        service_name=name,
        traces_exporters=traces,
        metrics_exporters=chosen_metrics,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        registry=registry,
        metrics_address=None if server is None else (str(server.server_address[0]), server.server_address[1]),
        closers=closers,
    )


def _exporters(variable: str, value: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """The exporters named in a comma list, without ``none``; unknown names are an error."""
    names = tuple(dict.fromkeys(name.strip().lower() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise TelemetryConfigError(
            variable, value, f"unknown exporter {', '.join(unknown)}; choose from {', '.join(choices)}"
        )
    return tuple(name for name in names if name != "none")


def _check_protocol(signal_protocol: str | None, settings: TelemetrySettings, signal: str) -> None:
    protocol = signal_protocol or settings.otel_exporter_otlp_protocol
    if protocol is not None and protocol != _OTLP_PROTOCOL:
        variable = f"OTEL_EXPORTER_OTLP{f'_{signal}' if signal_protocol else ''}_PROTOCOL"
        raise TelemetryConfigError(variable, protocol, f"only {_OTLP_PROTOCOL} is supported")


def _resource(service_name: str, settings: TelemetrySettings) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    # Resource.create lets our attributes beat the environment's; applying the
    # environment's detector again makes OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
    resource = Resource.create({SERVICE_NAME: service_name}).merge(OTELResourceDetector().detect())
    if settings.otel_service_name:
        resource = resource.merge(Resource({SERVICE_NAME: settings.otel_service_name}))
    return resource


def _span_processor(exporter: str, settings: TelemetrySettings, nats: NatsSettings | None) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    if exporter == "console":
        # Printed as each span ends: the console is for watching, not for throughput.
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if exporter == "hivewire":
        from bus.spanstore import SpanStoreExporter

        store = SpanStoreExporter(
            nats if nats is not None else NatsSettings(),
            max_age=settings.hivewire_span_store_max_age,
            max_bytes=settings.hivewire_span_store_max_bytes,
        )
        # Half a second unless OTEL_BSP_SCHEDULE_DELAY says otherwise (the SDK's default is
        # five): a turn's trace is looked at right after the turn.
        delay = settings.otel_bsp_schedule_delay if settings.otel_bsp_schedule_delay is not None else 500
        return BatchSpanProcessor(store, schedule_delay_millis=delay)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Endpoint, headers, timeout and compression come from OTEL_EXPORTER_OTLP_*,
    # batch sizes and delays from OTEL_BSP_*: both read by the SDK.
    return BatchSpanProcessor(OTLPSpanExporter())


def _periodic_reader(exporter: str) -> MetricReader:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    if exporter == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    # The interval comes from OTEL_METRIC_EXPORT_INTERVAL (default 60 s).
    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _prometheus(settings: TelemetrySettings) -> tuple[CollectorRegistry, MetricReader, WSGIServer | None]:
    """A reader on a registry of our own (not prometheus_client's global one) and, if asked, its server."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    server = None
    port = settings.hivewire_metrics_port
    if port is not None:
        try:
            server, _ = start_http_server(port, addr=settings.hivewire_metrics_host, registry=registry)
        except OSError as exc:
            reason = f"cannot listen on {settings.hivewire_metrics_host}:{port}: {exc}"
            raise TelemetryConfigError("HIVEWIRE_METRICS_PORT", port, reason) from exc
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    return registry, PrometheusMetricReader(registry=registry), server
