"""The OpenAPI document of the REST API, with schemas generated from the msgspec types it speaks."""

from __future__ import annotations

from typing import Any

import msgspec

from agents.card import AgentCard
from bus.a2a import Message, StreamResponse, Task
from gateway.conversation_routes import HistoryEntry, NewConversation, UserMessage
from gateway.limits import Usage
from gateway.rest import AgentSummary
from gateway.skill_routes import SkillInput, SkillOutput
from gateway.turns import Conversation, Turn

__all__ = ["DOCS_HTML", "openapi_document"]

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
            "post": _op("Start a conversation", {"201": _json("Conversation", "Created")}, "NewConversation")
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


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Hivewire gateway API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""
