"""What an in-memory metric reader has collected, as each agent's value of one metric."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader


def agent_points(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    """The last value of metric ``name`` for each agent (``"None"``: a point without an agent)."""
    data = reader.get_metrics_data()
    return {
        str(dict(point.attributes or {}).get("agent")): point.value  # type: ignore[union-attr]
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    }
