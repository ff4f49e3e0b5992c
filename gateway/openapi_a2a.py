"""The A2A endpoint's paths in the OpenAPI document: its JSON-RPC and HTTP+JSON bindings and its cards.

Each A2A interface is served twice: for the gateway's default agent below
``/a2a`` and for any agent below ``/a2a/agents/{agent}``. The HTTP+JSON
binding answers ``application/a2a+json``, its errors included (a
``google.rpc.Status`` in an ``error`` member); the gateway's own refusals (no
API key, a body too large, the rate limit) stay ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agents.listing import TaskPage
from bus.a2a import Role, TaskState
from gateway.a2a.cards import ServedCard
from gateway.a2a.models import ListPushResponse, PushConfig, SendParams
from gateway.a2a.rest import A2A_JSON
from gateway.openapi_parts import (
    AGENT,
    CID,
    ID_PATTERN,
    TASK,
    TASK_PARAM,
    example_card,
    example_task,
    json_body,
    json_reply,
    operation,
    ref,
)

__all__ = ["a2a_components", "a2a_paths"]

_REF = "#/components/schemas/{name}"
_CONFIG = "c1"
_MESSAGE = {
    "messageId": "order-1234",
    "role": Role.USER.value,
    "parts": [{"text": "hi"}],
}
_STATUS_EVENT = {
    "statusUpdate": {
        "taskId": TASK,
        "contextId": CID,
        "status": {"state": TaskState.COMPLETED.value, "timestamp": "2026-01-01T00:00:00Z"},
    }
}
_PUSH = {"url": "https://hooks.example.com/a2a", "token": "s3cret"}
_STATUS_ERROR = {
    "error": {
        "code": 404,
        "status": "NOT_FOUND",
        "message": f"no task {TASK!r} for tenant 'acme'",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "TASK_NOT_FOUND",
                "domain": "a2a-protocol.org",
                "metadata": {"taskId": TASK},
            }
        ],
    }
}
_A2A_ERRORS = {
    "400": "Invalid params or request, a task that cannot be canceled or continued, an unsupported version",
    "404": "No such agent (those of other tenants only are missing too), no such task (another tenant's "
    "are missing too), or no such push config",
    "500": "The agent failed or the mesh did not answer",
}
# The gateway's own refusals, as problems: before the binding reads the request.
_REFUSALS = ("401", "413", "415", "429", "431")
CONFIG_PARAM = {
    "name": "config_id",
    "in": "path",
    "required": True,
    "description": "A push notification config's id",
    "schema": {"type": "string", "pattern": ID_PATTERN},
    "example": _CONFIG,
}
VERSION = {
    "name": "A2A-Version",
    "in": "header",
    "description": (
        "The A2A protocol version the client speaks: 1.x (left out: 1.0), "
        "or 0.3 with v0.3's method names (message/send...) on the JSON-RPC endpoint"
    ),
    "schema": {"type": "string"},
    "example": "1.0",
}


def a2a_components() -> dict[str, Any]:
    """The schemas the A2A paths refer to (beside the gateway's own: Task, Message, AgentCard)."""
    _, components = msgspec.json.schema_components(
        (SendParams, PushConfig, ListPushResponse, TaskPage, ServedCard), ref_template=_REF
    )
    components["ListTasksResponse"] = components.pop("TaskPage")
    components["SendMessageResponse"] = {
        "type": "object",
        "description": "The task the message started or continued (this gateway always answers a task).",
        "properties": {"task": ref("Task"), "message": ref("Message")},
    }
    components["A2AError"] = {
        "type": "object",
        "description": "An A2A error of the HTTP+JSON binding: a google.rpc.Status in an error member.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer"},
                    "status": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["code", "status", "message"],
            }
        },
        "required": ["error"],
    }
    components["JsonRpcRequest"] = {
        "type": "object",
        "description": "A JSON-RPC 2.0 request of the A2A protocol (SendMessage, GetTask, CancelTask, ...).",
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "method": {"type": "string"},
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "params": {"type": "object"},
        },
        "required": ["jsonrpc", "method"],
    }
    components["JsonRpcResponse"] = {
        "type": "object",
        "description": "A JSON-RPC 2.0 response: a result, or an error with its code.",
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "result": {},
            "error": {
                "type": "object",
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
                "required": ["code", "message"],
            },
        },
        "required": ["jsonrpc", "id"],
    }
    return components


def a2a_paths() -> dict[str, Any]:
    """Every A2A path: cards, then each interface's JSON-RPC endpoint and HTTP+JSON routes."""
    card = {"200": json_reply(ref("ServedCard"), _served_card())}
    paths: dict[str, Any] = {
        "/.well-known/agent-card.json": {
            "get": operation(
                "default_card",
                "The A2A card of the gateway's default agent",
                card,
                errors=("404", "431"),
                public=True,
            )
        },
        "/a2a/.well-known/agent-card.json": {
            "get": operation(
                "a2a_default_card",
                "The A2A card of the gateway's default agent (below its interface URL)",
                card,
                errors=("404", "431"),
                public=True,
            )
        },
        "/a2a/agents/{agent}/.well-known/agent-card.json": {
            "get": operation(
                "agent_card",
                "An agent's A2A card (404 for an agent of some tenants only: theirs is the extended card)",
                card,
                parameters=[AGENT],
                errors=("400", "404", "431"),
                public=True,
            )
        },
    }
    for base, prefix, params in (("/a2a", "a2a", []), ("/a2a/agents/{agent}", "a2a_agent", [AGENT])):
        paths[base] = {"post": _json_rpc(f"{prefix}_rpc", params)}
        paths.update({base + path: item for path, item in _rest_paths(prefix, params).items()})
    return paths


def _served_card() -> dict[str, Any]:
    """A card as an A2A interface serves it: v1.0's, with the top-level fields A2A 0.3 clients read."""
    url = "https://gateway.example/a2a/agents/echo"
    interfaces = [("JSONRPC", "1.0"), ("HTTP+JSON", "1.0"), ("JSONRPC", "0.3")]
    return {
        **example_card(),
        "supportedInterfaces": [
            {"url": url, "protocolBinding": binding, "protocolVersion": version}
            for binding, version in interfaces
        ],
        "url": url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "additionalInterfaces": [{"url": url, "transport": "JSONRPC"}],
        "supportsAuthenticatedExtendedCard": True,
    }


def _json_rpc(op_id: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": TASK}}
    reply = {"jsonrpc": "2.0", "id": 1, "result": example_task(TaskState.COMPLETED)}
    op = operation(
        op_id,
        "A2A JSON-RPC (SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, ...; "
        "v0.3's message/send, tasks/get... too)",
        {
            "200": {
                "description": "A JSON-RPC response (or error: -32700 parse error, -32602 invalid params...)",
                "content": {
                    "application/json": {"schema": ref("JsonRpcResponse"), "example": reply},
                    **_events(
                        "SendStreamingMessage, SubscribeToTask: each event a JSON-RPC response",
                        ref("JsonRpcResponse"),
                        {"jsonrpc": "2.0", "id": 1, "result": _STATUS_EVENT},
                    ),
                },
            }
        },
        body=json_body(ref("JsonRpcRequest"), rpc),
        parameters=[*params, VERSION],
        errors=_REFUSALS,
    )
    op["responses"]["204"] = {"description": "A notification (a request without an id): no response"}
    return op


def _events(description: str, data: dict[str, Any], example: Any) -> dict[str, Any]:
    """Server-Sent Events, each an object of its fields, its data JSON (``data``'s schema)."""
    event = {
        "type": "object",
        "description": description,
        "properties": {
            "event": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "retry": {"type": "integer"},
        },
        "required": ["data"],
    }
    sample = {"id": "42", "data": msgspec.json.encode(example).decode()}
    return {"text/event-stream": {"schema": event, "example": sample}}


def _rest_paths(prefix: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    """The HTTP+JSON binding's routes below one interface URL."""
    task = [*params, TASK_PARAM]
    config = [*task, CONFIG_PARAM]
    send = json_body(ref("SendParams"), {"message": _MESSAGE})
    done = example_task(TaskState.COMPLETED)
    stream = {
        "200": {
            "description": "The task, then its events",
            "content": _events(
                "An A2A StreamResponse (an error: an A2AError, event error)",
                {"anyOf": [ref("StreamResponse"), ref("A2AError")]},
                _STATUS_EVENT,
            ),
        }
    }
    push = {**_PUSH, "id": _CONFIG, "taskId": TASK}
    listing = {"tasks": [done], "nextPageToken": "", "pageSize": 50, "totalSize": 1}
    query = [
        _query("contextId", {"type": "string"}, CID, "Only this context's tasks"),
        _query("status", {"enum": [state.value for state in TaskState]}, TaskState.COMPLETED.value),
        _query("pageSize", {"type": "integer", "minimum": 1, "maximum": 100}, 50),
        _query("pageToken", {"type": "string"}, "", "nextPageToken of the previous page"),
        _query("historyLength", {"type": "integer", "minimum": 0}, 10, "At most this many latest messages"),
        _query("statusTimestampAfter", {"type": "string", "format": "date-time"}, "2026-01-01T00:00:00Z"),
        _query("includeArtifacts", {"type": "boolean"}, False),
    ]
    return {
        "/message:send": {
            "post": _a2a_op(
                f"{prefix}_send_message",
                "SendMessage: start a task of the agent (or continue the one named), wait for it",
                {"200": _a2a_reply(ref("SendMessageResponse"), {"task": done})},
                body=send,
                parameters=params,
            )
        },
        "/message:stream": {
            "post": _a2a_op(
                f"{prefix}_stream_message",
                "SendStreamingMessage: like SendMessage, the task's events as Server-Sent Events",
                stream,
                body=send,
                parameters=params,
            )
        },
        "/tasks/{task_id}:subscribe": {
            method: _a2a_op(
                f"{prefix}_subscribe_{method}",
                "SubscribeToTask: the task, then its events (Last-Event-ID resumes after one)",
                stream,
                parameters=task,
            )
            for method in ("get", "post")
        },
        "/tasks/{task_id}:cancel": {
            "post": _a2a_op(
                f"{prefix}_cancel_task",
                "CancelTask: a running task stops",
                {"200": _a2a_reply(ref("Task"), example_task(TaskState.CANCELED))},
                body=json_body({"type": "object"}, {"metadata": {}}, required=False),
                parameters=task,
            )
        },
        "/tasks/{task_id}": {
            "get": _a2a_op(
                f"{prefix}_get_task",
                "GetTask: the task as it stands",
                {"200": _a2a_reply(ref("Task"), done)},
                parameters=[*task, query[4]],
            )
        },
        "/tasks": {
            "get": _a2a_op(
                f"{prefix}_list_tasks",
                "ListTasks: the tenant's tasks, the latest update first",
                {"200": _a2a_reply(ref("ListTasksResponse"), listing)},
                parameters=[*params, *query],
            )
        },
        "/tasks/{task_id}/pushNotificationConfigs": {
            "post": _a2a_op(
                f"{prefix}_create_push_config",
                "CreateTaskPushNotificationConfig: a webhook for the task's events",
                {"200": _a2a_reply(ref("PushConfig"), push)},
                body=json_body(ref("PushConfig"), _PUSH),
                parameters=task,
            ),
            "get": _a2a_op(
                f"{prefix}_list_push_configs",
                "ListTaskPushNotificationConfigs: the task's webhooks",
                {"200": _a2a_reply(ref("ListPushResponse"), {"configs": [push], "nextPageToken": ""})},
                parameters=[*task, query[2], query[3]],
            ),
        },
        "/tasks/{task_id}/pushNotificationConfigs/{config_id}": {
            "get": _a2a_op(
                f"{prefix}_get_push_config",
                "GetTaskPushNotificationConfig: one of the task's webhooks",
                {"200": _a2a_reply(ref("PushConfig"), push)},
                parameters=config,
            ),
            "delete": _a2a_op(
                f"{prefix}_delete_push_config",
                "DeleteTaskPushNotificationConfig: remove a webhook (one already gone too)",
                {"200": _a2a_reply({"type": "object"}, {})},
                parameters=config,
            ),
        },
        "/extendedAgentCard": {
            "get": _a2a_op(
                f"{prefix}_extended_card",
                "GetExtendedAgentCard: the card for this caller (its tenant and limits)",
                {"200": _a2a_reply(ref("ServedCard"), _served_card())},
                parameters=params,
            )
        },
    }


def _a2a_op(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An HTTP+JSON operation: its A2A errors as ``application/a2a+json``, the refusals as problems."""
    op = operation(op_id, summary, responses, body=body, parameters=[*parameters, VERSION], errors=_REFUSALS)
    for status, description in _A2A_ERRORS.items():
        op["responses"][status] = _a2a_reply(ref("A2AError"), _STATUS_ERROR, description)
    op["responses"]["default"] = op["responses"]["400"]
    return op


def _a2a_reply(schema: dict[str, Any], example: Any, description: str = "OK") -> dict[str, Any]:
    reply = json_reply(schema, example, description)
    reply["content"] = {A2A_JSON: reply["content"]["application/json"]}
    return reply


def _query(name: str, schema: dict[str, Any], example: Any, description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "schema": schema, "example": example}
    if description:
        param["description"] = description
    return param
