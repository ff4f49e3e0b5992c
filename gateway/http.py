"""HTTP plumbing every route shares: JSON bodies with a size limit, JSON responses, the API key."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway.problems import Problem

__all__ = ["api_key_of", "int_param", "json_response", "read_body", "read_json"]

T = TypeVar("T")

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


async def read_json(request: Request, body_type: type[T], limit: int) -> T:
    """The request body decoded and validated as ``body_type``.

    Raises:
        Problem: 415 (not JSON), 413 (too large), 400 (not valid JSON), 422 (does not match the schema).
    """
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Problem(415, "unsupported-media-type", "Send JSON", f"got {media!r}; use application/json")
    body = await read_body(request, limit)
    if not body.strip():
        raise Problem(400, "bad-json", "Empty body", "send a JSON document")
    try:
        return msgspec.json.decode(body, type=body_type)
    except msgspec.ValidationError as exc:
        raise Problem(422, "invalid-body", "The body does not match the schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, "bad-json", "The body is not valid JSON", str(exc)) from None


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
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Problem(400, "bad-parameter", f"Invalid {name}", f"{name} is an integer {bounds}")
    return value
