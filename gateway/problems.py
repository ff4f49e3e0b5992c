"""Errors as ``application/problem+json`` (RFC 9457): one shape for every failure a client sees.

Handlers raise :class:`Problem`; the bus and agent errors a request can meet
are translated here, in one table, so every route reports them the same way.

Every error is answered as an ordinary response, so the client's kept-alive
connection stays usable and the server span and metrics see the real status.
Starlette's handlers for ``Exception`` run in its ``ServerErrorMiddleware``,
which re-raises after answering (uvicorn then logs a traceback and drops the
connection): the known errors are handled per class instead
(:data:`EXCEPTION_HANDLERS`), and :class:`LastResort` answers the rest.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import nats.errors
from opentelemetry import trace
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from agents.errors import AgentError, HopLimitExceeded, SubmitUnconfirmed, TaskNotFound
from bus.errors import (
    BusError,
    ErrorCode,
    InvalidSubjectToken,
    MalformedPayload,
    NoResponders,
    NotConnected,
    PayloadTooLarge,
    RemoteError,
    RequestTimeout,
)
from bus.outage import describe_outage, is_outage

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_JSON",
    "RETRY_AFTER",
    "LastResort",
    "Problem",
    "bus_unavailable",
    "problem_from",
    "problem_response",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_BASE = "https://hivewire.dev/problems/"
_encoder = msgspec.json.Encoder()


class Problem(Exception):
    """An HTTP error with a stable type, a title for people and the detail of this occurrence."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {"type": _BASE + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    """``problem`` as a response."""
    return Response(
        _encoder.encode(problem.body(instance)),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


RETRY_AFTER = 1
"""Seconds a client is asked to wait (``Retry-After``) while the bus is unavailable."""

_REMOTE_STATUS = {
    ErrorCode.BAD_REQUEST: (422, "invalid-input", "The agent refused the input"),
    ErrorCode.NOT_FOUND: (404, "not-found", "Not found"),
    ErrorCode.HOP_LIMIT_EXCEEDED: (508, "hop-limit", "Too many agent hops"),
    ErrorCode.UNAVAILABLE: (503, "unavailable", "A service the agent needs is unavailable"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "deadline-exceeded", "The mesh did not answer in time"),
}


def bus_unavailable(detail: str, **extra: Any) -> Problem:
    """503 ``bus-unavailable``: NATS is away or recovering; try again in a moment."""
    return Problem(
        503,
        "bus-unavailable",
        "The message bus is unavailable",
        detail,
        headers={"Retry-After": str(RETRY_AFTER)},
        **extra,
    )


def problem_from(exc: Exception) -> Problem:
    """The problem an exception met while serving a request stands for."""
    match exc:
        case Problem():
            return exc
        case HTTPException():
            return Problem(
                exc.status_code,
                "http-" + str(exc.status_code),
                _http_title(exc.status_code),
                exc.detail if exc.detail != _http_title(exc.status_code) else "",
                headers=dict(exc.headers or {}),
            )
        case NoResponders():
            return Problem(
                503,
                "no-replica",
                "No live replica",
                f"nobody serves {exc.subject!r} right now",
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        case NotConnected():
            return bus_unavailable(str(exc))
        case RequestTimeout():
            return Problem(504, "deadline-exceeded", "The mesh did not answer in time", str(exc))
        case HopLimitExceeded():
            return Problem(508, "hop-limit", "Too many agent hops", str(exc))
        case RemoteError():
            status, kind, title = _REMOTE_STATUS.get(
                exc.code,
                (502, "agent-failed", "The agent failed"),  # type: ignore[call-overload]
            )
            # A service the agent needed was away (a replica restarting, say): worth another try.
            retry = {"Retry-After": str(RETRY_AFTER)} if status == 503 else {}
            return Problem(status, kind, title, exc.message, headers=retry, code=exc.code)
        case TaskNotFound():
            return Problem(404, "task-not-found", "No such task", str(exc))
        case InvalidSubjectToken():
            return Problem(400, "invalid-name", "Invalid name", str(exc))
        case PayloadTooLarge():
            return Problem(413, "too-large", "Payload too large for the bus", str(exc))
        case MalformedPayload():
            return Problem(502, "bad-reply", "The agent sent a reply that does not decode", str(exc))
        case SubmitUnconfirmed():
            # The task may yet run: its id lets the client look, or retry with the same id safely.
            return bus_unavailable(str(exc), taskId=exc.task_id)
    if is_outage(exc):
        return bus_unavailable(describe_outage(exc))
    log.exception("unexpected error serving a request", exc_info=exc)
    return Problem(500, "internal", "Internal error", "the gateway failed; the error is in its log")


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: every error becomes a problem document."""
    if isinstance(exc, ClientDisconnect):
        # Nobody is left to read an answer: nothing failed on our side.
        return Response(status_code=499)
    return problem_response(problem_from(exc), request.url.path)


EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    cls: handle for cls in (HTTPException, Problem, BusError, AgentError, nats.errors.Error, ClientDisconnect)
}
"""The errors a request can meet by design, each answered as an ordinary response (``exception_handlers``)."""


class LastResort:
    """ASGI middleware: an error no handler expected becomes a 500 problem, answered like any other.

    The error is logged once, with its traceback, and recorded on the
    request's span. Only when part of the
    response was already sent is the error raised on, so that the server
    closes the connection: a client must not take half a response for all of it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            trace.get_current_span().record_exception(exc)  # the server span around us
            response = problem_response(problem_from(exc), scope["path"])
            await response(scope, receive, send)


def _http_title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
