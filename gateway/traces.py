"""A turn's trace read back from the span store: the spans of one trace that the tenant's key may see."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.client import Bus
from bus.spanstore import SpanRecord, read_trace
from gateway.guard import Guard
from gateway.http import json_response
from gateway.problems import Problem

__all__ = ["Trace", "TraceRoutes"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")


class Trace(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A trace's spans that belong to the tenant, earliest start first."""

    trace_id: str
    spans: list[SpanRecord]


class TraceRoutes:
    """``GET /v1/traces/{trace_id}``."""

    def __init__(self, bus: Bus, guard: Guard) -> None:
        self._bus = bus
        self._guard = guard

    def routes(self) -> list[Route]:
        """The trace route."""
        return [Route("/v1/traces/{trace_id}", self.get_trace, methods=["GET"])]

    async def get_trace(self, request: Request) -> Response:
        """The tenant's spans of a trace (a turn's trace id is in its reply's metadata and in the
        ``traceresponse`` header); 404 when the store holds none of them."""
        admitted = await self._guard.admit(request)
        trace_id = request.path_params["trace_id"].lower()
        if _TRACE_ID.fullmatch(trace_id) is None:
            raise Problem(400, "bad-trace-id", "Invalid trace id", "a trace id is 32 hex digits")
        spans = await read_trace(self._bus, trace_id, admitted.tenant)
        if not spans:
            raise Problem(
                404,
                "trace-not-found",
                "No such trace",
                "the span store holds no span of this trace for this tenant (tracing off, "
                "not exported yet, or expired)",
            )
        spans.sort(key=lambda span: span.start)
        return json_response(Trace(trace_id=trace_id, spans=spans), headers=admitted.headers)
