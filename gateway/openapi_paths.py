"""The paths of the REST API in the OpenAPI document, and the paths of each live skill."""

from __future__ import annotations

from typing import Any

from bus.a2a import TaskState
from gateway.http import MAX_MESSAGE_ID, MESSAGE_ID_PATTERN
from gateway.openapi_parts import (
    AGENT,
    API_ERRORS,
    CALL_ERRORS,
    CID,
    CID_PARAM,
    IDEMPOTENCY_KEY,
    LOCATION,
    RATE_HEADERS,
    REPLY,
    SKILL,
    TASK,
    TASK_PARAM,
    WHEN,
    example,
    example_card,
    example_task,
    json_body,
    json_reply,
    operation,
    ref,
    sse_content,
)
from gateway.turns import Conversation, Turn

__all__ = ["rest_paths", "skill_paths"]


def _links(param: str, *operation_ids: str) -> dict[str, Any]:
    """Links from a new resource's id to the operations on it (``param`` takes ``$response.body#/id``)."""
    return {
        operation_id: {"operationId": operation_id, "parameters": {param: "$response.body#/id"}}
        for operation_id in operation_ids
    }


def _submitted() -> dict[str, Any]:
    accepted = json_reply(ref("Task"), example_task(), "Accepted", headers=LOCATION)
    accepted["links"] = _links("task_id", "get_task", "cancel_task")
    return accepted


def _created(conversation: Any) -> dict[str, Any]:
    created = json_reply(ref("Conversation"), conversation, "Created", headers=LOCATION)
    operations = ("get_conversation", "send_message", "read_history", "follow_events")
    created["links"] = _links("cid", *operations)
    return created


def skill_paths(
    agent: str, skill: str, input_schema: dict[str, Any], output_schema: dict[str, Any], *, streaming: bool
) -> dict[str, Any]:
    """The call and task paths of one live skill, with its own input and output schemas."""
    message_id = {
        "anyOf": [
            {"type": "string", "pattern": MESSAGE_ID_PATTERN, "maxLength": MAX_MESSAGE_ID},
            {"type": "null"},
        ]
    }
    body = {
        "type": "object",
        "description": "Without an input, the skill gets an empty text.",
        "properties": {"input": input_schema, "messageId": message_id},
        "additionalProperties": False,
    }
    # A task's input is checked by the skill when the task runs: one it refuses fails then.
    task_input = {"description": f"Any JSON value; the task fails if {agent}.{skill} refuses it"}
    task_body = {**body, "properties": {"input": task_input, "messageId": message_id}}
    output = {
        "type": "object",
        "properties": {"output": output_schema, "message": ref("Message")},
        "required": ["output", "message"],
    }
    reply: dict[str, Any] = {
        "description": "The skill's output",
        "content": {"application/json": {"schema": output}},
    }
    if streaming:
        reply["content"].update(
            sse_content("With Accept: text/event-stream: the chunks, then the final status")
        )
    call = f"/v1/agents/{agent}/skills/{skill}"
    return {
        call: {
            "post": operation(
                f"call_{agent}_{skill}",
                f"Call {agent}.{skill}" + (" (a streaming skill)" if streaming else ""),
                {"200": reply},
                body={"required": True, "content": {"application/json": {"schema": body}}},
                errors=CALL_ERRORS,
            )
        },
        call + "/tasks": {
            "post": operation(
                f"submit_{agent}_{skill}",
                f"Submit {agent}.{skill} as a durable task",
                {"202": _submitted()},
                body={"required": True, "content": {"application/json": {"schema": task_body}}},
                parameters=[IDEMPOTENCY_KEY],
                errors=API_ERRORS,
            )
        },
    }


def rest_paths() -> dict[str, Any]:
    """The /v1 routes."""
    conversation = example(
        Conversation(id=CID, agent="support", skill="chat", created_at=WHEN.timestamp(), streaming=True)
    )
    turn = example(
        Turn(
            conversation_id=CID,
            task_id=TASK,
            agent="support",
            skill="chat",
            text=REPLY.text,
            message=REPLY,
        )
    )
    skill_input = {"input": "hello"}
    card_example = example_card()
    return {
        "/v1/conversations": {
            "post": operation(
                "create_conversation",
                "Start a conversation (the gateway's default agent and skill unless named)",
                {"201": _created(conversation)},
                body=json_body(ref("NewConversation"), {"agent": "support", "skill": "chat"}, required=False),
                errors=API_ERRORS,
            ),
            "get": operation(
                "list_conversations",
                "The tenant's conversations, most recently active first",
                {"200": json_reply(ref("ConversationPage"), {"items": [conversation], "nextCursor": None})},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        "example": 20,
                        "description": "20 by default",
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "example": "WzE3NjcyMjU2MDAuMCwiNWIxZiJd",
                        "description": "nextCursor of the previous page",
                    },
                ],
                errors=("400", "401", "429", "431"),
            ),
        },
        "/v1/conversations/{cid}": {
            "get": operation(
                "get_conversation",
                "Read a conversation",
                {"200": json_reply(ref("Conversation"), conversation, headers=RATE_HEADERS)},
                parameters=[CID_PARAM],
            )
        },
        "/v1/conversations/{cid}/messages": {
            "post": operation(
                "send_message",
                "Send a message; the reply as JSON, or streamed as Server-Sent Events",
                {
                    "200": {
                        "description": "The turn's reply",
                        "content": {
                            "application/json": {"schema": ref("Turn"), "example": turn},
                            **sse_content(
                                "With Accept: text/event-stream: the turn's events, ending with its status. "
                                "The turn runs in the agent, whatever happens to this gateway: resume "
                                "with GET .../events and Last-Event-ID. A working status whose message's "
                                "metadata has hivewire.restart means the turn runs again from the start: "
                                "drop its text so far"
                            ),
                        },
                        "headers": RATE_HEADERS,
                    }
                },
                body=json_body(ref("UserMessage"), {"text": "How do I enable 2FA?"}),
                parameters=[CID_PARAM],
                errors=CALL_ERRORS,
            ),
            "get": operation(
                "read_history",
                "Read the conversation's history",
                {
                    "200": json_reply(
                        ref("History"),
                        {
                            "conversationId": CID,
                            "messages": [{"role": "user", "content": "How do I enable 2FA?"}],
                        },
                    )
                },
                parameters=[CID_PARAM],
            ),
        },
        "/v1/conversations/{cid}/events": {
            "get": operation(
                "follow_events",
                "Replay the conversation's events after Last-Event-ID (or ?after=) and follow new ones",
                {
                    "200": {
                        "description": "The events as SSE; each id is the event's stream sequence",
                        "content": sse_content("A2A StreamResponse events"),
                    }
                },
                parameters=[
                    CID_PARAM,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "The last event the client saw (empty: none)",
                        "schema": {"type": "string", "pattern": "^[0-9]{0,20}$"},
                        "example": "42",
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**64 - 2},
                        "example": 42,
                    },
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}, "example": False},
                ],
            )
        },
        "/v1/agents": {
            "get": operation(
                "list_agents",
                "List live agents",
                {
                    "200": json_reply(
                        {"type": "array", "items": ref("AgentSummary")},
                        [
                            {
                                "name": "echo",
                                "description": "Echoes",
                                "version": "1.0.0",
                                "replicas": 1,
                                "skills": ["shout"],
                            }
                        ],
                    )
                },
                errors=("401", "429", "431"),
            )
        },
        "/v1/agents/{agent}": {
            "get": operation(
                "get_agent",
                "A live agent: its card, with each skill's input and output schema, and its replicas",
                {"200": json_reply(ref("AgentDetail"), {"replicas": 1, "card": card_example})},
                parameters=[AGENT],
            )
        },
        "/v1/agents/{agent}/skills/{skill}": {
            "post": operation(
                "call_skill",
                "Call a skill (a streaming one: its whole output, or SSE with Accept: text/event-stream)",
                {
                    "200": {
                        "description": "The skill's output",
                        "content": {
                            "application/json": {
                                "schema": ref("SkillOutput"),
                                "example": {"output": "HELLO", "message": example(REPLY)},
                            },
                            **sse_content("A streaming skill's chunks, then the final status"),
                        },
                    }
                },
                body=json_body(ref("SkillInput"), skill_input),
                parameters=[AGENT, SKILL],
                errors=CALL_ERRORS,
            )
        },
        "/v1/agents/{agent}/skills/{skill}/tasks": {
            "post": operation(
                "submit_task",
                "Submit a durable task",
                {"202": _submitted()},
                body=json_body(ref("SkillInput"), skill_input),
                parameters=[AGENT, SKILL, IDEMPOTENCY_KEY],
                errors=API_ERRORS,
            )
        },
        "/v1/tasks/{task_id}": {
            "get": operation(
                "get_task",
                "A task's status and result (with ?wait=, long-polls until it ends)",
                {"200": json_reply(ref("Task"), example_task(TaskState.COMPLETED))},
                parameters=[
                    TASK_PARAM,
                    {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0}, "example": 5},
                ],
            )
        },
        "/v1/tasks/{task_id}/cancel": {
            "post": operation(
                "cancel_task",
                "Cancel a task",
                {"200": json_reply(ref("Task"), example_task(TaskState.CANCELED))},
                parameters=[TASK_PARAM],
            )
        },
        "/v1/usage": {
            "get": operation(
                "read_usage",
                "The tenant's usage and budget",
                {"200": json_reply(ref("Usage"), {"tenant": "acme", "requests": 12, "tokensToday": 420})},
                errors=("401", "429", "431"),
            )
        },
    }
