"""The OpenAPI document of the gateway: every route, with schemas generated from the msgspec types it speaks.

The document is made of the routes every gateway has (:func:`base_document`,
built once) and, for each live agent, its skills as paths of their own whose
bodies carry the skill's input and output schemas from the agent's card
(:func:`openapi_document`, per request: agents come and go).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec

from agents.card import AgentCard
from agents.registry import LiveAgent
from bus.a2a import Message, StreamResponse, Task
from gateway.conversation_routes import ConversationPage, History, NewConversation, UserMessage
from gateway.deadletters import DeadLetterPage, Replayed
from gateway.handoffs import FlaggedConversation, PersonReply
from gateway.http import MAX_MESSAGE_ID, MESSAGE_ID_PATTERN
from gateway.openapi_a2a import a2a_components, a2a_paths
from gateway.openapi_console import console_paths, page_paths
from gateway.openapi_mcp import mcp_paths
from gateway.openapi_parts import (
    ID_PATTERN,
    json_reply,
    operation,
    ref,
)
from gateway.openapi_paths import rest_paths, skill_paths
from gateway.probes import Health, Readiness
from gateway.rest import AgentDetail, AgentSummary, Identity
from gateway.skill_routes import SkillInput, SkillOutput, TaskPage
from gateway.traces import Trace
from gateway.turns import Conversation, Turn
from gateway.usage import Usage, UsageHistory

__all__ = ["ID_PATTERN", "base_document", "openapi_document"]

_TYPES: tuple[Any, ...] = (
    NewConversation,
    Conversation,
    UserMessage,
    Turn,
    History,
    AgentSummary,
    AgentDetail,
    AgentCard,
    SkillInput,
    SkillOutput,
    Task,
    Message,
    StreamResponse,
    Usage,
    Health,
    Readiness,
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

_DESCRIPTION = f"""HTTP into the Hivewire agent mesh: conversations (JSON or Server-Sent Events), \
skill calls, durable tasks, the A2A protocol's JSON-RPC and HTTP+JSON bindings below /a2a, and the \
live skills as MCP tools at /mcp (the Model Context Protocol over streamable HTTP).

Every /v1, /a2a and /mcp route but the agent cards needs an API key \
(`Authorization: Bearer <key>` or `X-API-Key`). \
Errors are `application/problem+json` (RFC 9457), but for the A2A bindings' own (JSON-RPC errors; \
`application/a2a+json` google.rpc.Status bodies). A method a path does not have is answered 405 \
with an `Allow` header naming the ones it has.

Limits: bodies up to HIVEWIRE_GATEWAY_MAX_BODY bytes (413) of UTF-8 JSON nested at most 64 deep \
(400); headers up to HIVEWIRE_GATEWAY_MAX_HEADERS bytes in all (431), URLs too (414); names and ids in paths \
`{ID_PATTERN}`; message ids 1 to {MAX_MESSAGE_ID} visible ASCII characters; event ids a uint64."""


@functools.cache
def base_document(version: str, *, console: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes every gateway serves (the console's pages with ``console``)."""
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    components["Problem"] = {
        "type": "object",
        "description": "An error (RFC 9457); some carry more members (limit, code).",
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "required": ["type", "title", "status"],
    }
    components.update(a2a_components())
    message_id = components["SkillInput"]["properties"]["messageId"]
    message_id["anyOf"][0]["maxLength"] = MAX_MESSAGE_ID
    assert message_id["anyOf"][0]["pattern"] == MESSAGE_ID_PATTERN
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hivewire gateway", "version": version, "description": _DESCRIPTION},
        "paths": {
            **rest_paths(),
            **console_paths(),
            **a2a_paths(),
            **mcp_paths(),
            **_protocol_paths(),
            **(page_paths() if console else {}),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A Hivewire API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def openapi_document(
    version: str, agents: list[LiveAgent] | tuple[LiveAgent, ...] = (), *, console: bool = True
) -> dict[str, Any]:
    """The gateway's OpenAPI document, with a path for each skill of each of ``agents``."""
    base = base_document(version, console=console)
    if not agents:
        return base
    document = {**base, "paths": dict(base["paths"])}
    schemas = dict(base["components"]["schemas"])
    document["components"] = {**base["components"], "schemas": schemas}
    for agent in agents:
        for skill_id, schema in sorted(agent.card.skill_schemas().items()):
            prefix = f"{agent.name}.{skill_id}."
            input_schema = _hoist(copy.deepcopy(schema.input), prefix, schemas)
            output_schema = _hoist(copy.deepcopy(schema.output), prefix, schemas)
            document["paths"].update(
                skill_paths(agent.name, skill_id, input_schema, output_schema, streaming=schema.streaming)
            )
    return document


def _hoist(schema: dict[str, Any], prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved to the components, under ``prefix``, and its refs to them."""
    for name, definition in schema.pop("$defs", {}).items():
        schemas[prefix + name] = _rewrite_refs(definition, prefix)
    rewritten: dict[str, Any] = _rewrite_refs(schema, prefix)
    return rewritten


def _rewrite_refs(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                _REF.format(name=prefix + item.removeprefix("#/$defs/"))
                if key == "$ref" and isinstance(item, str) and item.startswith("#/$defs/")
                else _rewrite_refs(item, prefix)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(item, prefix) for item in value]
    return value


def _protocol_paths() -> dict[str, Any]:
    """The probes, metrics and these docs."""
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "The process is up",
                {"200": json_reply(ref("Health"), {"status": "ok"})},
                errors=("431",),
                public=True,
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "The bus is connected and the registry readable (503 when not)",
                {
                    "200": json_reply(
                        ref("Readiness"),
                        {"ready": True, "checks": {"bus": True, "registry": True, "redis": "up"}},
                    ),
                    "503": json_reply(
                        ref("Readiness"),
                        {"ready": False, "checks": {"bus": False, "registry": False, "redis": "up"}},
                        "Not ready",
                    ),
                },
                errors=("431",),
                public=True,
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (404 when the process serves none)",
                {
                    "200": {
                        "description": "The Prometheus text format",
                        "content": {
                            "text/plain": {
                                "schema": {"type": "string"},
                                "example": "http_server_request_duration_seconds_count 1.0\n",
                            }
                        },
                    }
                },
                errors=("404", "431"),
                public=True,
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                {"200": json_reply({"type": "object"}, {"openapi": "3.1.0"})},
                errors=("431",),
                public=True,
            )
        },
        "/docs": {
            "get": operation(
                "docs",
                "Interactive API docs",
                {
                    "200": {
                        "description": "An HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                errors=("431",),
                public=True,
            )
        },
    }
