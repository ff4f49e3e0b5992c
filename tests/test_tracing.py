"""Tracing: a request that crosses two OS processes is one trace with correctly parented spans."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bus import Bus, EmbeddedNats, RemoteError, Request
from tests.conftest import settings_for
from tests.peers import Ping, Pong
from tests.processes import peer


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_one_trace_spans_the_caller_and_a_responder_in_another_process(
    nats_server: EmbeddedNats, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    bus = await Bus.connect(settings_for(nats_server.url), tracer_provider=provider)
    tracer = provider.get_tracer("test")
    try:
        async with peer(nats_server.url, "test.traced", "--trace") as responder:
            with tracer.start_as_current_span("turn"):
                await bus.request("test.traced", Ping(text="hi"), Pong)
            remote_spans = [json.loads(line) for line in await responder.stop()]
    finally:
        await bus.close()

    local = {span.name: span for span in exporter.get_finished_spans()}
    turn, send = local["turn"], local["request test.traced"]
    (process,) = (s for s in remote_spans if s["name"] == "process test.traced")

    assert send.kind is SpanKind.PRODUCER
    assert process["kind"] == "CONSUMER"
    assert send.parent is not None
    assert send.parent.span_id == turn.context.span_id
    assert process["trace_id"] == turn.context.trace_id
    assert process["parent_id"] == send.context.span_id
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "nats"
    assert send.attributes["messaging.destination.name"] == "test.traced"
    assert send.attributes["messaging.operation.type"] == "send"
    assert process["attributes"]["messaging.operation.type"] == "process"
    assert process["attributes"]["messaging.message.id"] == send.attributes["messaging.message.id"]


async def test_a_failing_handler_marks_its_span_as_an_error(
    nats_server: EmbeddedNats, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    bus = await Bus.connect(settings_for(nats_server.url), tracer_provider=provider)

    async def broken(request: Request[Ping]) -> Pong:
        raise RuntimeError("boom")

    try:
        await bus.serve("test.traced.broken", broken, Ping)
        with pytest.raises(RemoteError):
            await bus.request("test.traced.broken", Ping(text="x"), Pong)
    finally:
        await bus.close()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    process = spans["process test.traced.broken"]
    assert not process.status.is_ok
    assert process.attributes is not None
    assert process.attributes["error.type"] == "RuntimeError"
    assert any(event.name == "exception" for event in process.events)
    send = spans["request test.traced.broken"]
    assert not send.status.is_ok
