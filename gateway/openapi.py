"""The OpenAPI document of the REST API, with schemas generated from the msgspec types it speaks."""

from __future__ import annotations

from typing import Any

import msgspec

from agents.card import AgentCard
from bus.a2a import Message, StreamResponse, Task
from gateway.deadletters import DeadLetterPage, Replayed
from gateway.handoffs import FlaggedConversation, PersonReply
from gateway.limits import Usage, UsageHistory
from gateway.rest import (
    AgentSummary,
    ConversationPage,
    HistoryEntry,
    Identity,
    NewConversation,
    SkillInput,
    SkillOutput,
    TaskPage,
    UserMessage,
)
from gateway.traces import Trace
from gateway.turns import Conversation, Turn

__all__ = ["openapi_document"]

_TYPES: tuple[Any, ...] = (
    NewConversation,
    Conversation,
    UserMessage,
    Turn,
    HistoryEntry,
    AgentSummary,
    AgentCard,
    SkillInput,
    SkillOutput,
    Task,
    Message,
    StreamResponse,
    Usage,
    ConversationPage,
    TaskPage,
    Identity,
    UsageHistory,
    FlaggedConversation,
    PersonReply,
    DeadLetterPage,
    Replayed,
    Trace,
)
_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _op(summary: str, responses: dict[str, Any], body: str | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            **responses,
            "default": {
                "description": "An error (RFC 9457)",
                "content": {"application/problem+json": {"schema": _ref("Problem")}},
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    op.update(extra)
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, kind: str = "string", description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "schema": {"type": kind}}
    if description:
        param["description"] = description
    return param


def _array(name: str) -> dict[str, Any]:
    return {
        "description": "OK",
        "content": {"application/json": {"schema": {"type": "array", "items": _ref(name)}}},
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's REST API."""
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    components["Problem"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "required": ["type", "title", "status"],
    }
    sse: dict[str, Any] = {
        "description": "With 'Accept: text/event-stream': the turn's events (A2A StreamResponse JSON)",
        "content": {"text/event-stream": {"schema": _ref("StreamResponse")}},
    }
    cid, agent, skill, task_id = (_path_param(n) for n in ("cid", "agent", "skill", "task_id"))
    paths: dict[str, Any] = {
        "/v1/conversations": {
            "post": _op("Start a conversation", {"201": _json("Conversation", "Created")}, "NewConversation"),
            "get": _op(
                "The tenant's conversations, most recently active first",
                {"200": _json("ConversationPage")},
                parameters=[
                    _query("limit", "integer", "1 to 100 (20)"),
                    _query("cursor", description="nextCursor of the previous page"),
                ],
            ),
        },
        "/v1/conversations/{cid}/replies": {
            "post": _op(
                "A person's reply, as the conversation's agent (marks its hand-off handled)",
                {"201": _json("Message", "Created")},
                "PersonReply",
                parameters=[cid],
            )
        },
        "/v1/handoffs": {
            "get": _op(
                "Conversations flagged for a person, newest first",
                {"200": _array("FlaggedConversation")},
                parameters=[_query("status", description="open (default), handled or all")],
            )
        },
        "/v1/dead-letters": {
            "get": _op(
                "The tenant's dead letters, oldest first",
                {"200": _json("DeadLetterPage")},
                parameters=[
                    _query("agent"),
                    _query("limit", "integer", "1 to 200 (50)"),
                    _query("after", "integer", "nextAfter of the previous page"),
                ],
            )
        },
        "/v1/dead-letters/{seq}/replay": {
            "post": _op(
                "Queue a dead letter's task again",
                {"200": _json("Replayed")},
                parameters=[{"name": "seq", "in": "path", "required": True, "schema": {"type": "integer"}}],
            )
        },
        "/v1/tasks": {
            "get": _op(
                "The tenant's tasks, the latest change first",
                {"200": _json("TaskPage")},
                parameters=[
                    _query("contextId"),
                    _query("state", description="e.g. completed or TASK_STATE_COMPLETED"),
                    _query("agent"),
                    _query("limit", "integer", "1 to 200 (50)"),
                    _query("cursor", description="nextCursor of the previous page"),
                ],
            )
        },
        "/v1/usage/history": {
            "get": _op(
                "The tenant's usage hour by hour",
                {"200": _json("UsageHistory")},
                parameters=[_query("hours", "integer", "1 to 192 (24)")],
            )
        },
        "/v1/me": {"get": _op("The tenant the key belongs to", {"200": _json("Identity")})},
        "/v1/traces/{trace_id}": {
            "get": _op(
                "A turn's spans from the span store (the tenant's only)",
                {"200": _json("Trace")},
                parameters=[_path_param("trace_id")],
            )
        },
        "/v1/conversations/{cid}": {
            "get": _op("Read a conversation", {"200": _json("Conversation")}, parameters=[cid])
        },
        "/v1/conversations/{cid}/messages": {
            "post": _op(
                "Send a message; the reply as JSON, or streamed as Server-Sent Events",
                {"200": {**_json("Turn"), "content": {**_json("Turn")["content"], **sse["content"]}}},
                "UserMessage",
                parameters=[cid],
            ),
            "get": _op(
                "Read the conversation's history",
                {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                parameters=[cid],
            ),
        },
        "/v1/conversations/{cid}/events": {
            "get": _op(
                "Replay the conversation's events after Last-Event-ID and follow new ones",
                {"200": sse},
                parameters=[
                    cid,
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "schema": {"type": "integer"}},
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                ],
            )
        },
        "/v1/agents": {
            "get": _op(
                "List live agents",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": _ref("AgentSummary")}}
                        },
                    }
                },
            )
        },
        "/v1/agents/{agent}": {
            "get": _op("An agent's card", {"200": _json("AgentCard")}, parameters=[agent])
        },
        "/v1/agents/{agent}/skills/{skill}": {
            "post": _op(
                "Call a skill", {"200": _json("SkillOutput")}, "SkillInput", parameters=[agent, skill]
            )
        },
        "/v1/agents/{agent}/skills/{skill}/tasks": {
            "post": _op(
                "Submit a durable task",
                {"202": _json("Task", "Accepted")},
                "SkillInput",
                parameters=[
                    agent,
                    skill,
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                ],
            )
        },
        "/v1/tasks/{task_id}": {
            "get": _op(
                "A task's status and result",
                {"200": _json("Task")},
                parameters=[task_id, {"name": "wait", "in": "query", "schema": {"type": "number"}}],
            )
        },
        "/v1/tasks/{task_id}/cancel": {
            "post": _op("Cancel a task", {"200": _json("Task")}, parameters=[task_id])
        },
        "/v1/usage": {"get": _op("The tenant's usage and budget", {"200": _json("Usage")})},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hivewire gateway",
            "version": version,
            "description": "HTTP into the Hivewire agent mesh. The A2A protocol endpoint is at /a2a.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
