"""The HTTP+JSON (REST) binding of A2A: the protocol's resource URLs below each agent's interface URL.

``POST {url}/message:send`` and ``:stream``, ``GET {url}/tasks`` and
``/tasks/{id}``, ``POST /tasks/{id}:cancel``, ``/tasks/{id}:subscribe`` (POST
or GET), the push configs below a task, ``GET {url}/extendedAgentCard``.
Bodies and answers are A2A JSON (``application/a2a+json``); GET parameters are
query parameters with the JSON names. A2A errors are ``google.rpc.Status``
bodies with the HTTP status of the error, an ``ErrorInfo`` naming it;
refusals of the HTTP layer itself (401, 413, 415, 429) are problem documents,
as on every route of the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ExceptionHandler

from gateway.a2a.cards import Cards, base_url
from gateway.a2a.errors import A2AError, ErrorKind, a2a_error_from
from gateway.a2a.jsonrpc import check_version, last_event_id
from gateway.a2a.models import (
    CancelParams,
    ListParams,
    ListPushParams,
    PushConfig,
    PushConfigRef,
    SendParams,
    SubscribeParams,
    TaskParams,
    check_params,
    decode_params,
)
from gateway.a2a.operations import Event, Operations
from gateway.events import sse_comment, sse_event
from gateway.guard import Admitted, Guard
from gateway.http import read_body, require_json
from gateway.problems import RETRY_AFTER, Problem
from gateway.settings import GatewaySettings

__all__ = ["A2A_JSON", "RestBinding", "unrouted"]

A2A_JSON = "application/a2a+json"
P = TypeVar("P")
Handler = Callable[[Request, Admitted, str], Awaitable[Response]]

_encoder = msgspec.json.Encoder()
_HTTP_REFUSALS = frozenset({401, 413, 415, 429})


class RestBinding:
    """The REST routes of the A2A interfaces, answered by the shared operations."""

    def __init__(self, settings: GatewaySettings, guard: Guard, operations: Operations, cards: Cards) -> None:
        self._settings = settings
        self._guard = guard
        self._ops = operations
        self._cards = cards

    def routes(self, base: str, agent_of: Callable[[Request], str]) -> list[Route]:
        """The routes below the interface URL ``base`` (``agent_of`` names a request's agent)."""

        def route(path: str, handlers: dict[str, Handler], *, spends: bool = False) -> Route:
            # One route a path, whatever its methods: any other method is a 405 naming them all.
            async def endpoint(request: Request) -> Response:
                handler = handlers["GET" if request.method == "HEAD" else request.method]
                return await self._serve(request, handler, agent_of(request), spends)

            return Route(base + path, endpoint, methods=list(handlers))

        task = "/tasks/{task_id}"
        configs = task + "/pushNotificationConfigs"
        return [
            route("/message:send", {"POST": self._send}, spends=True),
            route("/message:stream", {"POST": self._stream}, spends=True),
            route(task + ":subscribe", {"POST": self._subscribe, "GET": self._subscribe}),
            route(task + ":cancel", {"POST": self._cancel}),
            route(task, {"GET": self._get}),
            route("/tasks", {"GET": self._list}),
            route(configs, {"POST": self._create_push, "GET": self._list_push}),
            route(configs + "/{config_id}", {"GET": self._get_push, "DELETE": self._delete_push}),
            route("/extendedAgentCard", {"GET": self._extended_card}),
        ]

    async def _serve(self, request: Request, handler: Handler, agent: str, spends: bool) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=spends)
        try:
            check_version(request)
            return await handler(request, admitted, agent)
        except Exception as exc:
            if isinstance(exc, Problem) and exc.status in _HTTP_REFUSALS:
                raise
            error = a2a_error_from(exc)
            headers = admitted.headers
            if error.kind is ErrorKind.UNAVAILABLE:
                headers = {**headers, "Retry-After": str(RETRY_AFTER)}
            return _json(error.status(), headers, status=error.kind.http_status)

    async def _send(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = await self._body(request, SendParams)
        return _json(await self._ops.send(admitted.tenant, agent, params), admitted.headers)

    async def _stream(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = await self._body(request, SendParams)
        return _sse(await self._ops.stream(admitted.tenant, agent, params), admitted.headers)

    async def _subscribe(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = SubscribeParams(id=request.path_params["task_id"])
        events = await self._ops.subscribe(admitted.tenant, params, after=last_event_id(request))
        return _sse(events, admitted.headers)

    async def _cancel(self, request: Request, admitted: Admitted, agent: str) -> Response:
        body = await self._optional_body(request)
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        params = CancelParams(id=request.path_params["task_id"], metadata=metadata)
        return _json(await self._ops.cancel(admitted.tenant, params), admitted.headers)

    async def _get(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = _query(request, TaskParams, id=request.path_params["task_id"])
        return _json(await self._ops.get(admitted.tenant, params), admitted.headers)

    async def _list(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = _query(request, ListParams)
        return _json(await self._ops.list(admitted.tenant, params), admitted.headers)

    async def _create_push(self, request: Request, admitted: Admitted, agent: str) -> Response:
        config = await self._body(request, PushConfig)
        config = msgspec.structs.replace(config, task_id=request.path_params["task_id"])
        return _json(await self._ops.create_push(admitted.tenant, config), admitted.headers)

    async def _list_push(self, request: Request, admitted: Admitted, agent: str) -> Response:
        params = _query(request, ListPushParams, taskId=request.path_params["task_id"])
        return _json(await self._ops.list_push(admitted.tenant, params), admitted.headers)

    async def _get_push(self, request: Request, admitted: Admitted, agent: str) -> Response:
        return _json(await self._ops.get_push(admitted.tenant, _config_ref(request)), admitted.headers)

    async def _delete_push(self, request: Request, admitted: Admitted, agent: str) -> Response:
        await self._ops.delete_push(admitted.tenant, _config_ref(request))
        return _json({}, admitted.headers)

    async def _extended_card(self, request: Request, admitted: Admitted, agent: str) -> Response:
        path = request.url.path.removesuffix("/extendedAgentCard")
        base = base_url(request, self._settings)
        return _json(await self._cards.extended(admitted.tenant, agent, base, path), admitted.headers)

    async def _body(self, request: Request, params_type: type[P]) -> P:
        require_json(request)
        body = await read_body(request, self._settings.gateway_max_body)
        if not body.strip():
            raise A2AError(ErrorKind.INVALID_PARAMS, "the request has no body")
        return decode_params(body, params_type)

    async def _optional_body(self, request: Request) -> dict[str, Any]:
        body = await read_body(request, self._settings.gateway_max_body)
        if not body.strip():
            return {}
        require_json(request)
        found = decode_params(body, dict[str, Any])
        return found


def _query(request: Request, params_type: type[P], **path: str) -> P:
    """Parameters from the query string (JSON names; numbers and booleans as text) and the path."""
    values: dict[str, Any] = {
        key: value for key, value in request.query_params.items() if key != "A2A-Version"
    }
    values.update(path)
    try:
        params = msgspec.convert(values, params_type, strict=False)
    except msgspec.ValidationError as exc:
        raise A2AError(ErrorKind.INVALID_PARAMS, str(exc)) from None
    check_params(params)
    return params


def _config_ref(request: Request) -> PushConfigRef:
    return PushConfigRef(task_id=request.path_params["task_id"], id=request.path_params["config_id"])


def unrouted(fallback: Callable[[Request, Exception], Awaitable[Response]]) -> ExceptionHandler:
    """The handler of HTTP errors, answering a URL below ``/a2a/`` that names no operation as this
    binding answers its errors (404, a ``google.rpc.Status``: its clients parse that), and every
    other one with ``fallback``. A known URL with another method stays a 405 with ``Allow``."""

    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 404 and request.url.path.startswith("/a2a/"):
            error = A2AError(ErrorKind.METHOD_NOT_FOUND, f"no A2A operation at {request.url.path!r}")
            return _json(error.status(), {}, status=404)
        return await fallback(request, exc)

    return handle


def _json(value: Any, headers: dict[str, str], *, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, headers=headers, media_type=A2A_JSON)


def _sse(events: AsyncIterator[Event], headers: dict[str, str]) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        yield sse_comment("hivewire")
        try:
            async for seq, event in events:
                if event is None:
                    yield sse_comment("ping")
                    continue
                yield sse_event(_encoder.encode(event), event_id=seq)
        except Exception as exc:  # noqa: BLE001 - the stream reports the failure as an A2A error
            yield sse_event(_encoder.encode(a2a_error_from(exc).status()), name="error")

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
