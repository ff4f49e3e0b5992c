"""The JSON-RPC 2.0 binding of A2A: one POST route per agent, methods named as in the protocol.

Per JSON-RPC 2.0: a request's ``id`` is echoed in every reply it can be read
from, even an invalid request's; a request without ``id`` is a notification,
run and answered with no body (204); a batch (an array) is refused with one
Invalid Request error, as A2A's streaming methods cannot share a reply.
Streaming methods answer with Server-Sent Events, each a JSON-RPC response
whose ``id:`` is the event's position in the log (send it back as
``Last-Event-ID`` to SubscribeToTask to resume after it).

A2A v0.3's methods are served at the same URL (:mod:`gateway.a2a.v03`): the
method name says which generation a request speaks. ``A2A-Version`` may
confirm it; a header naming the other generation is VersionNotSupported. No
header with a v1.0 name is taken as 1.0 (the protocol reads a missing header
as 0.3, but no v0.3 method has a v1.0 name, and plain ``curl`` keeps working).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.a2a.cards import Cards, base_url
from gateway.a2a.errors import A2AError, ErrorKind, a2a_error_from
from gateway.a2a.models import (
    CancelParams,
    ListParams,
    ListPushParams,
    PushConfig,
    PushConfigRef,
    SendParams,
    SubscribeParams,
    TaskParams,
    decode_params,
)
from gateway.a2a.operations import Event, Operations
from gateway.a2a.v03 import METHODS as V03_METHODS
from gateway.a2a.v03 import SPENDS_TOKENS as V03_SPENDS_TOKENS
from gateway.a2a.v03 import STREAMING as V03_STREAMING
from gateway.a2a.v03 import V03Methods, v03_error, v03_event
from gateway.events import sse_comment, sse_event
from gateway.guard import Admitted, Guard
from gateway.http import decode_json, event_id, json_response, read_body, require_json
from gateway.problems import Problem
from gateway.settings import GatewaySettings

__all__ = ["JsonRpcBinding", "check_version"]

_encoder = msgspec.json.Encoder()
_NO_ID: Any = msgspec.UNSET
_V1_METHODS = frozenset(
    {
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "GetExtendedAgentCard",
    }
)
_STREAMING = frozenset({"SendStreamingMessage", "SubscribeToTask"}) | V03_STREAMING
_SPENDS_TOKENS = frozenset({"SendMessage", "SendStreamingMessage"}) | V03_SPENDS_TOKENS
# Refusals the HTTP layer answers itself on every route (unauthorized, too large, rate limits).
_HTTP_REFUSALS = frozenset({401, 413, 415, 429})


class _Envelope(msgspec.Struct, frozen=True):
    """A JSON-RPC request as read before any check: every member may be missing or wrong."""

    jsonrpc: Any = None
    method: Any = None
    id: Any = _NO_ID
    params: msgspec.Raw = msgspec.Raw(b"{}")


_BODY: Any = _Envelope | list[msgspec.Raw]  # a request, or a batch (refused)


class JsonRpcBinding:
    """Answers JSON-RPC requests with the shared operations."""

    def __init__(self, settings: GatewaySettings, guard: Guard, operations: Operations, cards: Cards) -> None:
        self._settings = settings
        self._guard = guard
        self._ops = operations
        self._cards = cards
        self._v03 = V03Methods(settings, operations, cards)

    async def handle(self, request: Request, agent: str) -> Response:
        """Serve one HTTP request to ``agent``'s JSON-RPC endpoint."""
        admitted = await self._guard.admit(request)
        require_json(request)
        body = await read_body(request, self._settings.gateway_max_body)
        try:
            # UTF-8 JSON nested at most MAX_JSON_DEPTH deep, the params included.
            envelope = decode_json(body, _BODY)
        except msgspec.ValidationError:
            return _error(None, A2AError(ErrorKind.INVALID_REQUEST, "a request is a JSON object"))
        except msgspec.DecodeError as exc:
            return _error(None, A2AError(ErrorKind.PARSE_ERROR, f"the body is not valid JSON: {exc}"))
        if isinstance(envelope, list):
            return _error(None, A2AError(ErrorKind.INVALID_REQUEST, "batch requests are not supported"))
        request_id = envelope.id
        notification = request_id is _NO_ID
        if notification:
            request_id = None
        elif isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
            return _error(None, A2AError(ErrorKind.INVALID_REQUEST, "id must be a string, a number or null"))
        if envelope.jsonrpc != "2.0":
            return _error(request_id, A2AError(ErrorKind.INVALID_REQUEST, "jsonrpc must be '2.0'"))
        method = envelope.method
        if not isinstance(method, str) or not method:
            return _error(request_id, A2AError(ErrorKind.INVALID_REQUEST, "method must be a string"))
        v03 = method in V03_METHODS
        try:
            _check_generation(request, method, v03=v03)
            if method in _SPENDS_TOKENS:
                await self._guard.require_tokens(admitted)
            if method in _STREAMING:
                if notification:  # nobody to stream to
                    return Response(status_code=204)
                if v03:
                    after = last_event_id(request)
                    events = await self._v03.stream(admitted, agent, method, envelope.params, after=after)
                else:
                    events = await self._stream(admitted, agent, method, request, envelope.params)
                return _sse(request_id, events, admitted.headers, v03=v03)
            if v03:
                result = await self._v03.call(request, admitted, agent, method, envelope.params)
            else:
                result = await self._call(request, admitted, agent, method, envelope.params)
        except Exception as exc:
            if isinstance(exc, Problem) and exc.status in _HTTP_REFUSALS:
                raise  # the HTTP layer's own answer (over the token budget), as on every route
            if notification:
                return Response(status_code=204)
            # v0.3's codes for a request in v0.3; a header naming another version gets 1.0's (-32009).
            version = _version(request)
            return _error(request_id, a2a_error_from(exc), v03=v03 and (not version or _is_v03(version)))
        if notification:
            return Response(status_code=204, headers=admitted.headers)
        return json_response({"jsonrpc": "2.0", "id": request_id, "result": result}, headers=admitted.headers)

    async def _call(
        self, request: Request, admitted: Admitted, agent: str, method: str, params: msgspec.Raw
    ) -> Any:
        ops, tenant = self._ops, admitted.tenant
        match method:
            case "SendMessage":
                return await ops.send(tenant, agent, decode_params(params, SendParams))
            case "GetTask":
                return await ops.get(tenant, decode_params(params, TaskParams))
            case "ListTasks":
                return await ops.list(tenant, decode_params(params, ListParams))
            case "CancelTask":
                return await ops.cancel(tenant, decode_params(params, CancelParams))
            case "CreateTaskPushNotificationConfig":
                return await ops.create_push(tenant, decode_params(params, PushConfig))
            case "GetTaskPushNotificationConfig":
                return await ops.get_push(tenant, decode_params(params, PushConfigRef))
            case "ListTaskPushNotificationConfigs":
                return await ops.list_push(tenant, decode_params(params, ListPushParams))
            case "DeleteTaskPushNotificationConfig":
                await ops.delete_push(tenant, decode_params(params, PushConfigRef))
                return {}
            case "GetExtendedAgentCard":
                return await self._cards.extended(
                    tenant, agent, base_url(request, self._settings), request.url.path
                )
        raise A2AError(ErrorKind.METHOD_NOT_FOUND, f"no method {method!r}", method=method)

    async def _stream(
        self, admitted: Admitted, agent: str, method: str, request: Request, params: msgspec.Raw
    ) -> AsyncIterator[Event]:
        if method == "SendStreamingMessage":
            return await self._ops.stream(admitted.tenant, agent, decode_params(params, SendParams))
        return await self._ops.subscribe(
            admitted.tenant, decode_params(params, SubscribeParams), after=last_event_id(request)
        )


def check_version(request: Request) -> None:
    """Refuse a request for an A2A version other than 1.x (none given: taken as 1.0).

    Raises:
        A2AError: version not supported.
    """
    version = _version(request)
    if version and not _is_v1(version):
        raise A2AError(
            ErrorKind.VERSION_NOT_SUPPORTED,
            f"A2A version {version} is not supported here; this binding speaks 1.0 "
            "(A2A 0.3 clients use the JSON-RPC binding)",
            supportedVersions="1.0",
        )


def _check_generation(request: Request, method: str, *, v03: bool) -> None:
    """Refuse a JSON-RPC request whose ``A2A-Version`` is not its method's generation.

    Raises:
        A2AError: version not supported.
    """
    version = _version(request)
    if not version:
        return
    if not (_is_v1(version) or _is_v03(version)):
        advice = "this endpoint speaks 1.0 and 0.3"
        problem = f"A2A version {version} is not supported"
    elif v03 and _is_v1(version):
        advice = "send A2A-Version: 0.3 (or none), or the method's 1.0 name"
        problem = f"{method!r} is an A2A 0.3 method, and the request says A2A-Version {version}"
    elif method in _V1_METHODS and _is_v03(version):
        advice = "send A2A-Version: 1.0 (or none), or the method's 0.3 name (message/send, tasks/get...)"
        problem = f"{method!r} is an A2A 1.0 method, and the request says A2A-Version {version}"
    else:
        return  # the method's generation, or an unknown method (answered: no such method)
    raise A2AError(ErrorKind.VERSION_NOT_SUPPORTED, f"{problem}: {advice}", supportedVersions="1.0, 0.3")


def _version(request: Request) -> str:
    return (request.headers.get("a2a-version") or request.query_params.get("A2A-Version") or "").strip()


def _is_v1(version: str) -> bool:
    return version.split(".")[0].strip() == "1"


def _is_v03(version: str) -> bool:
    return version.split(".")[:2] == ["0", "3"]


def last_event_id(request: Request) -> int | None:
    """The event a resuming client saw last (``Last-Event-ID``), if it says.

    Raises:
        A2AError: the header is not an event id.
    """
    raw = request.headers.get("last-event-id")
    if not raw:
        return None
    try:
        return event_id(raw)
    except Problem as exc:
        raise A2AError(ErrorKind.INVALID_PARAMS, f"Last-Event-ID: {exc.detail}") from None


def _error(request_id: Any, error: A2AError, *, v03: bool = False) -> Response:
    rendered = v03_error(error) if v03 else error.jsonrpc()
    return json_response({"jsonrpc": "2.0", "id": request_id, "error": rendered})


def _sse(
    request_id: Any, events: AsyncIterator[Event], headers: dict[str, str], *, v03: bool = False
) -> StreamingResponse:
    """The events as SSE, each a JSON-RPC response; v0.3's in its form, its error unnamed (as v0.3 did)."""

    async def frames() -> AsyncIterator[bytes]:
        yield sse_comment("hivewire")
        try:
            async for seq, event in events:
                if event is None:
                    yield sse_comment("ping")
                    continue
                result = v03_event(event) if v03 else event
                yield sse_event(_encoder.encode(_result(request_id, result)), event_id=seq)
        except Exception as exc:  # noqa: BLE001 - the stream reports the failure as a JSON-RPC error
            error = a2a_error_from(exc)
            rendered = {"jsonrpc": "2.0", "id": request_id}
            if v03:
                yield sse_event(_encoder.encode({**rendered, "error": v03_error(error)}))
            else:
                yield sse_event(_encoder.encode({**rendered, "error": error.jsonrpc()}), name="error")

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _result(request_id: Any, event: object) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": event}
