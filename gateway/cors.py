"""Cross-origin requests: web pages of the origins each tenant allows (the chat widget on a site).

Starlette's ``CORSMiddleware`` knows one list of origins for the whole app;
here the allowed origins are per tenant, and the tenant comes from the API
key, which a browser's preflight does not carry. So the work is split:

- this middleware answers preflights, and adds the ``Access-Control-*``
  headers to responses, for an origin that *some* tenant allows;
- the guard (``gateway/guard.py``) refuses, with 403, a request from an
  origin that the *key's* tenant does not allow, before anything runs.

The console's assets (``/console/...``, ``/widget.js``) are public: any
origin may load them (the widget loads its modules from the gateway).
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import Problem, problem_response
from gateway.settings import GatewaySettings

__all__ = ["CrossOrigin"]

_METHODS = "GET, POST, OPTIONS"
_HEADERS = "Authorization, X-API-Key, Content-Type, Accept, Last-Event-ID, Idempotency-Key, traceparent"
# What a page's script may read of a response.
_EXPOSED = (
    "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "Hivewire-Task-Id, traceresponse"
)
_PUBLIC = ("/console/", "/widget.js")


class CrossOrigin:
    """ASGI middleware: CORS for the origins some tenant allows, and for the public assets."""

    def __init__(self, app: ASGIApp, *, settings: GatewaySettings) -> None:
        self._app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin == _own_origin(scope, headers):
            await self._app(scope, receive, send)
            return
        public = scope["path"].startswith(_PUBLIC)
        allowed = public or self._settings.any_origin_allowed(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, allowed, scope, receive, send)
            return
        if not allowed:
            await self._app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response = MutableHeaders(scope=message)
                response["Access-Control-Allow-Origin"] = "*" if public else origin
                response["Access-Control-Expose-Headers"] = _EXPOSED
                response.add_vary_header("Origin")
            await send(message)

        await self._app(scope, receive, with_cors)

    async def _preflight(
        self, origin: str, allowed: bool, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if not allowed:
            refused = Problem(403, "origin-not-allowed", "Origin not allowed", f"no tenant allows {origin}")
            await problem_response(refused, scope["path"])(scope, receive, send)
            return
        response = Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Allow-Headers": _HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
        await response(scope, receive, send)


def _own_origin(scope: Scope, headers: Headers) -> str:
    host = headers.get("host", "")
    return f"{scope.get('scheme', 'http')}://{host}"
