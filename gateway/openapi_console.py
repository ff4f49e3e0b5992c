"""The paths the console works with in the OpenAPI document: listings, hand-offs, dead letters, usage
by the hour, traces, and the console's own pages."""

from __future__ import annotations

from typing import Any

from agents.handoff import Handoff
from bus.a2a import TaskState
from bus.spanstore import SpanRecord
from gateway.handoffs import FlaggedConversation
from gateway.openapi_parts import (
    CID,
    CID_PARAM,
    REPLY,
    example,
    example_task,
    json_body,
    json_reply,
    operation,
    ref,
)
from gateway.traces import Trace
from gateway.usage import UsageHistory, UsageHour

__all__ = ["console_paths", "page_paths"]

_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_CURSOR = "WzE3NjcyMjU2MDAuMCwiNWIxZiJd"
_LISTING_ERRORS = ("400", "401", "429", "431")


def _query(name: str, schema: dict[str, Any], example_value: Any, description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "schema": schema, "example": example_value}
    if description:
        param["description"] = description
    return param


def _integer(low: int, high: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low}
    if high is not None:
        schema["maximum"] = high
    return schema


def _cursor() -> dict[str, Any]:
    return _query("cursor", {"type": "string"}, _CURSOR, "nextCursor of the previous page")


def console_paths() -> dict[str, Any]:
    """The routes behind the console: listings, hand-offs, dead letters, hourly usage, traces."""
    flagged = example(
        FlaggedConversation(conversation_id=CID, handoff=Handoff(reason="negative sentiment", at=1.0))
    )
    hour = UsageHour(hour="2026-01-01T00:00:00Z", requests=12, input_tokens=300, output_tokens=120)
    usage = example(UsageHistory(tenant="acme", hours=[hour]))
    span = SpanRecord(
        trace_id=_TRACE_ID, span_id="00f067aa0ba902b7", name="POST /v1/conversations/{cid}/messages",
        service="hivewire-gateway", kind="server", start=1, end=2,
    )  # fmt: skip
    seq = {"name": "seq", "in": "path", "required": True, "schema": _integer(1, 2**64 - 1), "example": 7}
    trace_id = {
        "name": "trace_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
        "example": _TRACE_ID,
    }
    return {
        "/v1/conversations/{cid}/replies": {
            "post": operation(
                "reply_as_person",
                "A person's reply, as the conversation's agent (marks its hand-off handled)",
                {"201": json_reply(ref("Message"), example(REPLY), "Created")},
                body=json_body(ref("PersonReply"), {"text": "I have reset it for you.", "author": "sam"}),
                parameters=[CID_PARAM],
                errors=("400", "401", "404", "413", "415", "422", "429", "431"),
            )
        },
        "/v1/handoffs": {
            "get": operation(
                "list_handoffs",
                "Conversations flagged for a person, newest first",
                {"200": json_reply({"type": "array", "items": ref("FlaggedConversation")}, [flagged])},
                parameters=[
                    _query("status", {"enum": ["open", "handled", "all"]}, "open", "open by default")
                ],
                errors=_LISTING_ERRORS,
            )
        },
        "/v1/dead-letters": {
            "get": operation(
                "list_dead_letters",
                "The tenant's dead letters, oldest first",
                {"200": json_reply(ref("DeadLetterPage"), {"items": [], "nextAfter": None})},
                parameters=[
                    _query("agent", {"type": "string"}, "jobs"),
                    _query("limit", _integer(1, 200), 50, "50 by default"),
                    _query("after", _integer(0), 0, "nextAfter of the previous page"),
                ],
                errors=_LISTING_ERRORS,
            )
        },
        "/v1/dead-letters/{seq}/replay": {
            "post": operation(
                "replay_dead_letter",
                "Queue a dead letter's task again",
                {"200": json_reply(ref("Replayed"), {"seq": 7, "task": example_task()})},
                parameters=[seq],
            )
        },
        "/v1/tasks": {
            "get": operation(
                "list_tasks",
                "The tenant's tasks, the latest change first",
                {"200": json_reply(ref("TaskPage"), {"items": [example_task(TaskState.COMPLETED)]})},
                parameters=[
                    _query("contextId", {"type": "string"}, CID),
                    _query(
                        "state", {"type": "string"}, "completed", "e.g. completed or TASK_STATE_COMPLETED"
                    ),
                    _query("agent", {"type": "string"}, "echo"),
                    _query("limit", _integer(1, 200), 50, "50 by default"),
                    _cursor(),
                ],
                errors=_LISTING_ERRORS,
            )
        },
        "/v1/usage/history": {
            "get": operation(
                "read_usage_history",
                "The tenant's usage hour by hour",
                {"200": json_reply(ref("UsageHistory"), usage)},
                parameters=[_query("hours", _integer(1, 192), 24, "24 by default")],
                errors=_LISTING_ERRORS,
            )
        },
        "/v1/me": {
            "get": operation(
                "identity",
                "The tenant the key belongs to",
                {"200": json_reply(ref("Identity"), {"tenant": "acme"})},
                errors=("401", "429", "431"),
            )
        },
        "/v1/traces/{trace_id}": {
            "get": operation(
                "get_trace",
                "A turn's spans from the span store (the tenant's only)",
                {"200": json_reply(ref("Trace"), example(Trace(trace_id=_TRACE_ID, spans=[span])))},
                parameters=[trace_id],
            )
        },
    }


def page_paths() -> dict[str, Any]:
    """The console's pages and the chat widget's script (their assets are under /console/static)."""
    html = {"text/html": {"schema": {"type": "string"}}}
    paths = {
        path: {
            "get": operation(
                op_id,
                summary,
                {"200": {"description": "The page", "content": html}},
                errors=("431",),
                public=True,
            )
        }
        for path, op_id, summary in (
            ("/", "console", "The web console"),
            ("/console", "console_page", "The web console"),
            ("/console/", "console_index", "The web console"),
            ("/console/examples/widget.html", "widget_example", "A page showing the chat widget"),
        )
    }
    script = {"text/javascript": {"schema": {"type": "string"}}}
    paths["/widget.js"] = {
        "get": operation(
            "widget_script",
            "The chat widget, to load from any site",
            {"200": {"description": "The script", "content": script}},
            errors=("431",),
            public=True,
        )
    }
    return paths
