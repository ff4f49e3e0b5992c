"""The metric names the code exports, as Prometheus shows them, read from the instruments it creates.

Every ``meter.create_*("name", unit=...)`` call in the packages is found in their source (not
imported and run), and turned into the series names OpenTelemetry's Prometheus exporter gives
it: dots become underscores, a duration in seconds gains ``_seconds``, counters end in
``_total``, and a histogram is its ``_bucket``, ``_sum`` and ``_count``. The dashboard and the
alert rules may use only these; a scrape after a turn shows the mapping is right.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bus", "agents", "knowledge", "gateway")

_COUNTERS = {"create_counter", "create_observable_counter"}
_HISTOGRAMS = {"create_histogram"}
_GAUGES = {
    "create_up_down_counter",
    "create_observable_up_down_counter",
    "create_observable_gauge",
    "create_gauge",
}
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}


def instruments() -> dict[str, tuple[str, str]]:
    """Every instrument the packages create: its name -> (kind, unit)."""
    found: dict[str, tuple[str, str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                kind = node.func.attr
                if kind not in _COUNTERS | _HISTOGRAMS | _GAUGES or not node.args:
                    continue
                name = node.args[0]
                assert isinstance(name, ast.Constant), ast.dump(node)
                assert isinstance(name.value, str), ast.dump(node)
                unit = next((k.value for k in node.keywords if k.arg == "unit"), None)
                found[name.value] = (kind, unit.value if isinstance(unit, ast.Constant) else "")
    return found


def exported() -> set[str]:
    """The Prometheus series names of every instrument."""
    names: set[str] = set()
    for name, (kind, unit) in instruments().items():
        base = re.sub(r"[^a-zA-Z0-9_]", "_", name)
        suffix = _UNITS.get(unit)
        if suffix and not base.endswith("_" + suffix):
            base += "_" + suffix
        if kind in _COUNTERS:
            names.add(base + "_total")
        elif kind in _HISTOGRAMS:
            names.update(base + end for end in ("_bucket", "_sum", "_count"))
        else:
            names.add(base)
    return names


_PREFIXES = ("hivewire_", "http_", "messaging_", "gen_ai_")


def used_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (label names and matchers left out)."""
    # Label matchers {...} and label lists after by/without name labels, not metrics.
    bare = re.sub(r"\{[^}]*\}", " ", expression)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    return {token for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if token.startswith(_PREFIXES)}
