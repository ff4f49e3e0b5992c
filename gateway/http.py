"""HTTP plumbing every route shares: JSON bodies within limits, JSON responses, ids, the API key.

The limits are the gateway's promise that no input, however hostile, costs
more than a 4xx: a body is at most ``HIVEWIRE_GATEWAY_MAX_BODY`` bytes of UTF-8
JSON nested at most :data:`MAX_JSON_DEPTH` deep, the headers at most
``HIVEWIRE_GATEWAY_MAX_HEADERS`` bytes, a message id at most
:data:`MAX_MESSAGE_ID` characters and an event id a uint64.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.problems import Problem, problem_response

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_ID",
    "MESSAGE_ID_PATTERN",
    "HeaderLimit",
    "api_key_of",
    "check_message_id",
    "decode_json",
    "event_id",
    "int_param",
    "json_response",
    "read_body",
    "read_json",
    "require_json",
    "too_deep",
]

T = TypeVar("T")

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON body may have (decoders give out near 1,000)."""

MAX_MESSAGE_ID = 128
"""Longest message id (``messageId``, ``Idempotency-Key``): it travels as the ``Nats-Msg-Id`` header."""

_MAX_EVENT_ID = 2**64 - 2  # the stream sequence after it must fit JetStream's uint64
MESSAGE_ID_PATTERN = rf"^[!-~]{{1,{MAX_MESSAGE_ID}}}$"
"""What a message id may be: visible ASCII (safe in any header), 1 to :data:`MAX_MESSAGE_ID` of them."""

_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)
_EVENT_ID = re.compile(r"[0-9]{1,20}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # within int64, and a JetStream sequence after it in uint64
# A JSON string (escapes included) and the bytes that are not brackets, to measure nesting in C.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))

_encoder = msgspec.json.Encoder()


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``value`` (any msgspec-encodable value) as ``application/json``."""
    return Response(
        _encoder.encode(value), status_code=status, headers=headers, media_type="application/json"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too-large", "Request body too large", f"the limit is {limit} bytes", limit=limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(
                413, "too-large", "Request body too large", f"the limit is {limit} bytes", limit=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes, body_type: type[T]) -> T:
    """``body`` decoded and validated as ``body_type``, within the gateway's limits.

    Raises:
        msgspec.DecodeError: not UTF-8 JSON, or nested deeper than :data:`MAX_JSON_DEPTH`.
        msgspec.ValidationError: valid JSON that does not match ``body_type``.
    """
    if _deeper_than(body, MAX_JSON_DEPTH):
        raise msgspec.DecodeError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return msgspec.json.decode(body, type=body_type)
    except UnicodeDecodeError as exc:
        raise msgspec.DecodeError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deep") from None


async def read_json(request: Request, body_type: type[T], limit: int) -> T:
    """The request body decoded and validated as ``body_type``.

    Raises:
        Problem: 415 (not JSON), 413 (too large), 400 (not valid JSON), 422 (does not match the schema).
    """
    require_json(request)
    body = await read_body(request, limit)
    if not body.strip():
        raise Problem(400, "bad-json", "Empty body", "send a JSON document")
    try:
        return decode_json(body, body_type)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", "The body does not match the schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "bad-json", "The body is not valid JSON", str(exc)) from None


def require_json(request: Request) -> None:
    """Refuse a body that is not JSON (``application/json`` or ``*+json``; none said: taken as JSON).

    Raises:
        Problem: 415.
    """
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(415, "unsupported-media-type", "Send JSON", f"got {media!r}; use application/json")


def too_deep(body: bytes) -> bool:
    """Whether ``body`` nests arrays and objects deeper than :data:`MAX_JSON_DEPTH` (measured without
    parsing it: a parser would recurse, and a recursion error leaves CPython 3.11 unsteady)."""
    return _deeper_than(body, MAX_JSON_DEPTH)


def _deeper_than(body: bytes, limit: int) -> bool:
    if body.count(b"[") + body.count(b"{") <= limit:  # the usual body: nothing to measure
        return False
    depth = 0
    for byte in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_message_id(value: str, name: str = "messageId") -> str:
    """``value`` if it can be a message id: 1 to :data:`MAX_MESSAGE_ID` visible ASCII characters.

    Raises:
        Problem: 422, it cannot.
    """
    if _MESSAGE_ID.fullmatch(value) is None:  # not match: "$" would let a final newline through
        raise Problem(
            422,
            "invalid-id",
            "Invalid message id",
            f"{name} must be 1 to {MAX_MESSAGE_ID} visible ASCII characters",
        )
    return value


def event_id(value: str) -> int:
    """An event id (a stream sequence) sent as ``Last-Event-ID`` or ``?after=``.

    Raises:
        Problem: 400, not ASCII decimal digits of a number below 2**64 - 1.
    """
    if _EVENT_ID.fullmatch(value) is None or int(value) > _MAX_EVENT_ID:
        shown = value if len(value) <= 24 else value[:24] + "..."
        raise Problem(400, "bad-event-id", "Invalid event id", f"{shown!r} is not an event id")
    return int(value)


def api_key_of(request: Request) -> str | None:
    """The API key a request presents: ``Authorization: Bearer`` or ``X-API-Key``."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key")


def int_param(request: Request, name: str, default: int, *, low: int, high: int | None = None) -> int:
    """The integer query parameter ``name`` (``default`` when absent).

    Raises:
        Problem: 400, not an integer between ``low`` and ``high``.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() would also take "١٢", " 5" or "1_000", and 4,300 digits raise.
    value = int(raw) if _INTEGER.fullmatch(raw) else low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Problem(400, "bad-parameter", f"Invalid {name}", f"{name} is an integer {bounds}")
    return value


class HeaderLimit:
    """ASGI middleware: the request head within ``limit`` bytes, its headers (431) and its URL (414).

    uvicorn's httptools parser sets no bound of its own; the bus, where ids
    travel as headers, does (64 KiB a message).
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self._refusal(scope)
            if problem is not None:
                await problem_response(problem, None)(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Problem | None:
        url = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        if url > self._limit:
            detail = f"the URL has {url} bytes; the limit is {self._limit}"
            return Problem(414, "uri-too-long", "URL too long", detail, limit=self._limit)
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > self._limit:
            detail = f"the headers add up to {size} bytes; the limit is {self._limit}"
            return Problem(431, "headers-too-large", "Request headers too large", detail, limit=self._limit)
        return None
