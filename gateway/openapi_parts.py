"""The parts the OpenAPI document's paths are made of: operations, parameters, bodies and examples.

The examples are built from the very structs the gateway answers with, so
they match the schemas generated from those structs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from agents.card import AgentCapabilities, AgentCard, AgentSkill
from agents.events import chunk_event
from bus.a2a import Message, Part, Role, StreamResponse, Task, TaskState, TaskStatus, TaskStatusUpdateEvent
from gateway.http import MESSAGE_ID_PATTERN

__all__ = [
    "AGENT",
    "API_ERRORS",
    "CALL_ERRORS",
    "CID",
    "CID_PARAM",
    "IDEMPOTENCY_KEY",
    "ID_PATTERN",
    "LOCATION",
    "RATE_HEADERS",
    "REPLY",
    "SKILL",
    "TASK",
    "TASK_PARAM",
    "WHEN",
    "example",
    "example_card",
    "example_task",
    "json_body",
    "json_reply",
    "operation",
    "ref",
    "sse_content",
]

ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
"""Names and ids in paths: they become NATS subject tokens."""

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
CID, TASK = "5b1f0c1e9a7d4f7e8c2b3a4d5e6f7a8b", "9c8b7a6d5e4f3a2b1c0d9e8f7a6b5c4d"
REPLY = Message(
    message_id="0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a",
    role=Role.AGENT,
    parts=(Part.text_part("Open Settings, then Security."),),
    context_id=CID,
    task_id=TASK,
)


def example(value: Any) -> Any:
    """``value`` as the JSON the gateway sends for it."""
    return msgspec.json.decode(msgspec.json.encode(value))


def example_card() -> dict[str, Any]:
    """An agent card as the API answers it."""
    shout = AgentSkill(id="shout", name="shout", description="Repeat the text in capitals.")
    card = AgentCard(
        name="echo",
        description="Echoes.",
        version="1.2.0",
        skills=(shout,),
        capabilities=AgentCapabilities(),
        default_input_modes=("text/plain",),
        default_output_modes=("text/plain",),
    )
    value: dict[str, Any] = example(card)
    return value


def example_task(state: TaskState = TaskState.SUBMITTED) -> dict[str, Any]:
    """A task record as the API answers it."""
    task = Task(id=TASK, context_id=CID, status=TaskStatus(state=state, timestamp=WHEN))
    value: dict[str, Any] = example(task)
    return value


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


RATE_HEADERS = {
    name: {"description": description, "schema": {"type": "integer"}}
    for name, description in (
        ("RateLimit-Limit", "Requests the tenant may send in a burst"),
        ("RateLimit-Remaining", "Requests left in the burst"),
        ("RateLimit-Reset", "Seconds until the burst is whole again"),
    )
}
LOCATION = {"Location": {"description": "Where the new resource is", "schema": {"type": "string"}}}
_PROBLEMS = {
    "400": "Invalid input: not JSON, too deep, not UTF-8, a bad id or name",
    "401": "No valid API key",
    "404": "No such agent, skill, conversation or task (another tenant's are missing too)",
    "413": "Body too large",
    "415": "The body is not JSON",
    "422": "The body does not match the schema, or the agent refused the input",
    "429": "Over the tenant's rate limit or daily token budget",
    "431": "Headers too large",
    "502": "The agent failed",
    "503": "No live replica, or the bus is unavailable or recovering (Retry-After says when to try again)",
    "504": "The mesh did not answer in time",
}
_EXAMPLE_PROBLEM = {
    "type": "https://hivewire.dev/problems/agent-not-found",
    "title": "No such agent",
    "status": 404,
    "detail": "no agent named 'nobody' is running",
    "instance": "/v1/agents/nobody",
}
_SSE_EXAMPLE = "".join(
    f"id: {seq}\nevent: {name}\ndata: {msgspec.json.encode(event).decode()}\n\n"
    for seq, name, event in (
        (41, "artifact", chunk_event(TASK, CID, "a1", Part.text_part("Open Settings"))),
        (
            42,
            "status",
            StreamResponse(
                status_update=TaskStatusUpdateEvent(
                    task_id=TASK,
                    context_id=CID,
                    status=TaskStatus(state=TaskState.COMPLETED, message=REPLY, timestamp=WHEN),
                )
            ),
        ),
    )
)


def json_reply(
    schema: dict[str, Any], example: Any, description: str = "OK", headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema, "example": example}},
    }
    if headers:
        response["headers"] = headers
    return response


def sse_content(description: str) -> dict[str, Any]:
    return {
        "text/event-stream": {
            "schema": {"type": "string", "description": description},
            "example": _SSE_EXAMPLE,
        }
    }


def operation(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "401", "404", "429", "431"),
    public: bool = False,
) -> dict[str, Any]:
    """One operation: its own responses, the problems it can answer, and a default problem."""
    problems = {
        status: {
            "description": _PROBLEMS[status],
            "content": {"application/problem+json": {"schema": ref("Problem"), "example": _EXAMPLE_PROBLEM}},
        }
        for status in errors
    }
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {**responses, **problems, "default": problems.get("400") or _any_problem()},
    }
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    if public:
        op["security"] = []
    return op


def _any_problem() -> dict[str, Any]:
    return {
        "description": "An error (RFC 9457)",
        "content": {"application/problem+json": {"schema": ref("Problem"), "example": _EXAMPLE_PROBLEM}},
    }


def _path_param(name: str, example: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": ID_PATTERN},
        "example": example,
    }


def json_body(schema: dict[str, Any], example: Any, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema, "example": example}}}


CID_PARAM = _path_param("cid", CID, "A conversation's id")
AGENT = _path_param("agent", "echo", "A live agent's name")
SKILL = _path_param("skill", "shout", "One of the agent's skills")
TASK_PARAM = _path_param("task_id", TASK, "A task's id")
# Every route may meet a NATS outage (503 bus-unavailable, with Retry-After).
API_ERRORS = ("400", "401", "404", "413", "415", "422", "429", "431", "503")
CALL_ERRORS = (*API_ERRORS, "502", "504")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "The task's message id (resubmissions with it get the same task)",
    "schema": {"type": "string", "pattern": MESSAGE_ID_PATTERN},
    "example": "order-1234",
}
