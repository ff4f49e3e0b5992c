"""``hivewire traces TRACE_ID``: a turn's spans, read back from the span store, as a text waterfall.

It asks ``--url``, else ``HIVEWIRE_GATEWAY_URL``, else the gateway of the mesh
``hivewire up`` runs from the data folder, with ``HIVEWIRE_API_KEY`` or the
key ``hivewire up`` recorded, for
``GET /v1/traces/{id}``: the spans of the trace that the key's tenant may see.
A turn's trace id is in its reply (the ``traceresponse`` header, the
``hivewire.trace`` metadata) and is printed by ``hivewire ask``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gateway.local import find_gateway

__all__ = ["render", "run"]

_BAR = 32


def run(args: argparse.Namespace) -> int:
    """``hivewire traces`` (registered in :mod:`gateway.cli`)."""
    base, key, _ = find_gateway(args.url, getattr(args, "data_dir", None))
    if not key:
        print(
            "hivewire traces: no gateway found; run `hivewire up` here, or set HIVEWIRE_GATEWAY_URL and "
            "HIVEWIRE_API_KEY",
            file=sys.stderr,
        )
        return 2
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        print(f"hivewire traces: {base!r} is not an http(s) URL", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        f"{base.rstrip('/')}/v1/traces/{urllib.parse.quote(args.trace_id.strip(), safe='')}",
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            found = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
            detail = f"{problem.get('title')}: {problem.get('detail', '')}"
        except ValueError:
            detail = f"HTTP {exc.code}"
        print(f"hivewire traces: {detail}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"hivewire traces: cannot reach the gateway at {base} ({exc})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(render(found["traceId"], found["spans"]))
    return 0


def render(trace_id: str, spans: list[dict[str, Any]], *, width: int = _BAR) -> str:
    """The spans (as ``GET /v1/traces/{id}`` returns them) as a text waterfall: each span under its
    parent, with its start and duration in milliseconds and a bar on the trace's time line. A span
    whose parent is not in the trace (not exported yet, or another tenant's) starts a tree of its own."""
    if not spans:
        return f"trace {trace_id}: no spans"
    start = min(span["start"] for span in spans)
    end = max(span["end"] for span in spans)
    total = max(end - start, 1)
    ids = {span["spanId"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        parent = span.get("parentId") if span.get("parentId") in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[tuple[str, str, str, str, str]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        offset = (span["start"] - start) / 1e6
        duration = (span["end"] - span["start"]) / 1e6
        first = int((span["start"] - start) / total * width)
        length = max(1, round((span["end"] - span["start"]) / total * width))
        bar = (" " * first + "█" * length)[:width].ljust(width)
        mark = " ✗" if span.get("status") == "error" else ""
        name = "  " * depth + span["name"] + mark
        rows.append((f"{offset:.1f}", f"{duration:.1f}", name, span["service"], bar))
        for child in children.get(span["spanId"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    services = {span["service"] for span in spans}
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    head = (
        f"trace {trace_id}: {len(spans)} spans, {len(services)} "
        f"{'service' if len(services) == 1 else 'services'}, {total / 1e6:.1f} ms"
    )
    lines = [head, ""]
    for offset, duration, name, service, bar in rows:
        lines.append(
            f"{offset.rjust(widths[0])} ms  {duration.rjust(widths[1])} ms  "
            f"{name.ljust(widths[2])}  {service.ljust(widths[3])}  |{bar}|"
        )
    errors = [span for span in spans if span.get("status") == "error"]
    if errors:
        lines.append("")
    for span in errors:
        lines.append(f"✗ {span['name']} ({span['service']}): {span.get('statusMessage') or 'error'}")
    return "\n".join(lines)
