"""A responder that runs as its own OS process, so tests cross a real process boundary.

Run as ``python tests/peers.py --url URL --subject S [--queue Q] [--trace]``. It
prints ``ready`` once it serves, and on SIGTERM stops and, with ``--trace``,
prints the spans it recorded as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import msgspec
import uvloop
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import Bus, NatsSettings, Request


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    delay: float = 0.0


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    pid: int
    remaining: float | None = None


async def serve(args: argparse.Namespace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = NatsSettings(nats_url=args.url, nats_reconnect_wait=0.2, _env_file=None)  # type: ignore[call-arg]
    bus = await Bus.connect(settings, name=f"peer-{os.getpid()}", tracer_provider=provider)

    async def pong(request: Request[Ping]) -> Pong:
        if request.payload.delay:
            await asyncio.sleep(request.payload.delay)
        return Pong(text=request.payload.text, pid=os.getpid(), remaining=request.remaining())

    await bus.serve(args.subject, pong, Ping, queue=args.queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await bus.close()
    if args.trace:
        for span in exporter.get_finished_spans():
            context = span.get_span_context()
            assert context is not None
            print(
                json.dumps(
                    {
                        "name": span.name,
                        "kind": span.kind.name,
                        "trace_id": context.trace_id,
                        "span_id": context.span_id,
                        "parent_id": span.parent.span_id if span.parent else None,
                        "attributes": dict(span.attributes or {}),
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--queue")
    parser.add_argument("--trace", action="store_true")
    uvloop.run(serve(parser.parse_args()))
    sys.exit(0)


if __name__ == "__main__":
    main()
