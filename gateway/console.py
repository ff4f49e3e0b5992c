"""The web console and the chat widget: static files in the package, served by the gateway.

Everything the browser loads is in the wheel (``gateway/console/``): plain ES
modules and hand-written CSS, no build step and no CDN; Swagger UI for
``/docs`` is vendored under ``console/vendor`` with its licence. Pages are
sent with a content security policy that allows scripts from the gateway
only. ``docs/console.md`` describes the pages.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["CONSOLE", "console_routes"]

CONSOLE = Path(__file__).with_name("console")

# Scripts from the gateway only; inline styles are allowed (the waterfall positions its bars,
# Swagger UI styles itself), inline scripts are not.
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> Route:
    path = CONSOLE / name

    async def serve(request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    return Route("/", serve, methods=["GET", "HEAD"])


def console_routes(*, console: bool = True) -> list[BaseRoute]:
    """``/docs`` (offline Swagger UI) and, with ``console``, the console at ``/`` and ``/console``,
    its assets, and ``/widget.js``."""
    docs = _page("docs.html").endpoint
    routes: list[BaseRoute] = [
        Route("/docs", docs, methods=["GET", "HEAD"]),
        Mount("/console/vendor", StaticFiles(directory=CONSOLE / "vendor")),
    ]
    if not console:
        return [*routes, Mount("/console/static", StaticFiles(directory=CONSOLE / "static"))]
    index = _page("index.html").endpoint

    async def widget(request: Request) -> Response:
        return FileResponse(
            CONSOLE / "static" / "widget.js",
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def example(request: Request) -> Response:
        # The example page, pointing at this gateway (the key stays a placeholder).
        text = (CONSOLE / "examples" / "widget.html").read_text()
        base = f"{request.url.scheme}://{request.url.netloc}"
        return Response(text.replace("GATEWAY", base), media_type="text/html; charset=utf-8")

    return [
        *routes,
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/console", index, methods=["GET", "HEAD"]),
        Route("/console/", index, methods=["GET", "HEAD"]),
        Route("/widget.js", widget, methods=["GET", "HEAD"]),
        Route("/console/examples/widget.html", example, methods=["GET"]),
        Mount("/console/static", StaticFiles(directory=CONSOLE / "static")),
    ]
