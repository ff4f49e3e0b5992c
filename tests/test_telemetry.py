"""Process telemetry: OTEL_* variables choose exporters; an agent process exports its spans and metrics."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agents import AgentSettings, Mesh
from bus import (
    Bus,
    EmbeddedNats,
    RemoteError,
    Request,
    TelemetryConfigError,
    TelemetrySettings,
    start_telemetry,
)
from bus.telemetry import DURATION_BUCKETS
from bus.tracing import BusTelemetry
from tests.conftest import settings_for
from tests.processes import AGENT_ENV, agent_process


def telemetry_settings(**values: object) -> TelemetrySettings:
    """Settings from ``values`` alone, whatever OTEL_* the machine running the tests has set."""
    defaults: dict[str, object] = {"otel_traces_exporter": "none", "otel_metrics_exporter": "none"}
    return TelemetrySettings(**{**defaults, **values})  # type: ignore[arg-type]


class OtlpReceiver:
    """A tiny OTLP/HTTP trace collector on a free loopback port: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, SpanProto]] = []  # (service.name, span)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend((service, span) for span in scope_spans.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
async def traced_mesh(agent_settings: AgentSettings) -> AsyncIterator[tuple[Mesh, InMemorySpanExporter]]:
    """The test's own side of a trace: a mesh whose bus records spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = await Bus.connect(agent_settings, name="test-traced", tracer_provider=provider)
    yield await Mesh.open(bus, agent_settings), exporter
    await bus.close()
    provider.shutdown()


async def test_with_no_exporter_the_providers_are_no_ops_and_the_bus_skips_spans() -> None:
    telemetry = start_telemetry("hivewire-test", settings=telemetry_settings())
    assert not telemetry.tracing
    assert not BusTelemetry(tracer_provider=telemetry.tracer_provider).tracing
    telemetry.shutdown()


async def test_an_unknown_exporter_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(
        TelemetryConfigError, match=r"OTEL_TRACES_EXPORTER='otlp,zipkin'.*unknown exporter zipkin"
    ):
        start_telemetry("hivewire-test", settings=telemetry_settings(otel_traces_exporter="otlp,zipkin"))
    with pytest.raises(ValueError, match="choose from otlp, console, prometheus, none"):
        start_telemetry("hivewire-test", settings=telemetry_settings(otel_metrics_exporter="statsd"))
    with pytest.raises(TelemetryConfigError, match="only http/protobuf"):
        start_telemetry(
            "hivewire-test",
            settings=telemetry_settings(otel_traces_exporter="otlp", otel_exporter_otlp_protocol="grpc"),
        )
    without_prometheus = start_telemetry(
        "hivewire-test", settings=telemetry_settings(otel_metrics_exporter="console")
    )
    with pytest.raises(TelemetryConfigError, match="OTEL_METRICS_EXPORTER='console': add prometheus"):
        without_prometheus.prometheus_text()
    without_prometheus.shutdown()


def test_a_taken_metrics_port_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TelemetryConfigError, match=f"HIVEWIRE_METRICS_PORT={port}: cannot listen"):
            start_telemetry("hivewire-test", settings=telemetry_settings(hivewire_metrics_port=port))


async def test_an_agent_with_a_bad_exporter_name_exits_2_and_says_why(nats_server: EmbeddedNats) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bus.cli", "agent", "run", "tests.zoo:echo"),
        env={
            **os.environ,
            **AGENT_ENV,
            "HIVEWIRE_NATS_URL": nats_server.url,
            "OTEL_TRACES_EXPORTER": "zipkin",
        },
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "OTEL_TRACES_EXPORTER='zipkin': unknown exporter zipkin" in err.decode()


def test_the_environment_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    def service_name() -> object:
        telemetry = start_telemetry(
            "hivewire-agent-echo", settings=telemetry_settings(otel_traces_exporter="console")
        )
        telemetry.shutdown()
        assert isinstance(telemetry.tracer_provider, TracerProvider)
        name = telemetry.tracer_provider.resource.attributes["service.name"]
        assert telemetry.service_name == name
        return name

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert service_name() == "hivewire-agent-echo"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,deployment.environment=test")
    assert service_name() == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")
    assert service_name() == "from-service-name"


async def test_prometheus_text_counts_bus_errors(nats_server: EmbeddedNats) -> None:
    telemetry = start_telemetry(
        "hivewire-test", settings=telemetry_settings(otel_metrics_exporter="prometheus")
    )
    bus = await Bus.connect(settings_for(nats_server.url), meter_provider=telemetry.meter_provider)

    async def broken(request: Request[str]) -> str:
        raise RuntimeError("boom")

    try:
        await bus.serve("test.telemetry.broken", broken, str)
        with pytest.raises(RemoteError):
            await bus.request("test.telemetry.broken", "x", str)
    finally:
        await bus.close()
    body, content_type = telemetry.prometheus_text()
    telemetry.shutdown()
    telemetry.shutdown()  # a second time does nothing

    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    (errors,) = [line for line in text.splitlines() if line.startswith("hivewire_bus_handler_errors_total{")]
    assert 'messaging_destination_name="test.telemetry.broken"' in errors
    assert 'error_type="RuntimeError"' in errors
    assert errors.endswith(" 1.0")
    assert "messaging_process_duration_seconds_count{" in text
    assert _bucket_bounds(text, "messaging_process_duration_seconds") == [*map(str, DURATION_BUCKETS), "+Inf"]


def _bucket_bounds(text: str, histogram: str) -> list[str]:
    """The ``le`` bounds of the first series of ``histogram`` in Prometheus text."""
    bounds: list[str] = []
    for line in text.splitlines():
        if line.startswith(histogram + "_bucket{"):
            bound = line.split('le="')[1].split('"')[0]
            if bounds and bound == "0.005":
                break
            bounds.append(bound)
    return bounds


async def test_an_agent_prints_its_spans_to_the_console_and_serves_metrics(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "HIVEWIRE_METRICS_PORT": "0"}
    async with agent_process(nats_server.url, "tests.zoo:echo", **env) as agent:
        url = agent.banner.rpartition("metrics at ")[2]
        assert url.startswith("http://127.0.0.1:")
        assert await mesh.caller("acme").call("echo", "shout", "console", str) == "CONSOLE"
        with pytest.raises(RemoteError, match="unavailable"):
            await mesh.caller("acme").call("echo", "broken", "count", str)
        metrics = (await asyncio.to_thread(_get, url)).decode()
        assert await agent.terminate() == 0
        assert agent.process.stdout is not None
        printed = (await agent.process.stdout.read()).decode()

    spans = list(_json_objects(printed))
    (process,) = [s for s in spans if s["name"].startswith("process ") and s["name"].endswith(".shout")]
    assert process["kind"] == "SpanKind.CONSUMER"
    assert process["attributes"]["messaging.system"] == "nats"
    assert process["resource"]["attributes"]["service.name"] == "hivewire-agent-echo"
    assert 'service_name="hivewire-agent-echo"' in metrics  # target_info
    lines = metrics.splitlines()
    (errors,) = [line for line in lines if line.startswith("hivewire_bus_handler_errors_total{")]
    assert 'error_type="RemoteError"' in errors


async def test_an_agents_otlp_spans_continue_the_callers_trace(
    nats_server: EmbeddedNats, otlp_receiver: OtlpReceiver, traced_mesh: tuple[Mesh, InMemorySpanExporter]
) -> None:
    mesh, exporter = traced_mesh
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url}
    async with agent_process(nats_server.url, "tests.zoo:echo", **env) as agent:
        assert await mesh.caller("acme").call("echo", "shout", "otlp", str) == "OTLP"
        # The batch is sent at shutdown, after the drain, at the latest.
        assert await agent.terminate() == 0

    (request,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    (service, process), *_ = [(n, s) for n, s in otlp_receiver.spans if s.name.startswith("process ")]
    assert service == "hivewire-agent-echo"
    assert process.kind == SpanProto.SPAN_KIND_CONSUMER
    assert process.trace_id == request.context.trace_id.to_bytes(16, "big")
    assert process.parent_span_id == request.context.span_id.to_bytes(8, "big")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects the console exporter printed one after another (each over several lines)."""
    decoder, at = json.JSONDecoder(), 0
    while (at := text.find("{", at)) != -1:
        found, at = decoder.raw_decode(text, at)
        yield found
