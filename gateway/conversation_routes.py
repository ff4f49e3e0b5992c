"""The REST routes of conversations: start one, send it messages (JSON or streamed), read and follow it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from agents.mesh import Mesh
from bus.a2a import Message, Role, TaskState
from gateway.discovery import live_agent
from gateway.events import ConversationFeed, Feed, event_name, sse_comment, sse_event, sse_response
from gateway.guard import Guard
from gateway.http import MESSAGE_ID_PATTERN, check_message_id, event_id, int_param, json_response, read_json
from gateway.index import Cursor
from gateway.problems import Problem
from gateway.replies import with_problem
from gateway.settings import GatewaySettings
from gateway.turns import Conversation, Conversations, Turn, ends

__all__ = [
    "ConversationPage",
    "ConversationRoutes",
    "History",
    "HistoryEntry",
    "NewConversation",
    "UserMessage",
]

_encoder = msgspec.json.Encoder()


class NewConversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start a conversation with an agent's skill (the gateway's defaults when left out)."""

    agent: str | None = None
    skill: str | None = None


class UserMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """One message from the user: plain ``text``, or a full A2A ``message`` (exactly one of them).

    ``messageId`` (or the message's own id) makes a resend of the same message (a
    client retrying after a dropped connection) a 409 instead of a second turn.
    """

    text: str | None = None
    message_id: Annotated[str, Meta(pattern=MESSAGE_ID_PATTERN)] | None = None
    message: Message | None = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded turn of a conversation."""

    role: str
    content: str


class History(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation's recorded turns, oldest first."""

    conversation_id: str
    messages: list[HistoryEntry]


class ConversationPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Conversations, most recently active first; pass ``nextCursor`` back as ``cursor`` for more."""

    items: list[Conversation]
    next_cursor: str | None = None


class ConversationRoutes:
    """Conversations over the mesh: their records, turns and events."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        guard: Guard,
        conversations: Conversations,
        feed: ConversationFeed,
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._conversations = conversations
        self._feed = feed

    async def create(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        body = (
            await read_json(request, NewConversation, self._settings.gateway_max_body)
            if _has_body(request)
            else NewConversation()
        )
        agent_name = body.agent or self._settings.gateway_agent
        skill_name = body.skill or self._settings.gateway_skill
        agent = await live_agent(self._mesh, agent_name, skill_name, tenant=admitted.tenant)
        schema = agent.card.skill_schemas().get(skill_name)
        conversation = await self._conversations.create(
            admitted.tenant, agent_name, skill_name, streaming=schema is not None and schema.streaming
        )
        headers = {**admitted.headers, "Location": f"/v1/conversations/{conversation.id}"}
        return json_response(conversation, 201, headers)

    async def listing(self, request: Request) -> Response:
        """The tenant's conversations, newest activity first (``?limit=`` up to 100, ``?cursor=``)."""
        admitted = await self._guard.admit(request)
        limit = int_param(request, "limit", 20, low=1, high=100)
        raw = request.query_params.get("cursor")
        after = Cursor.decode(raw) if raw else None
        items, following = await self._conversations.page(admitted.tenant, limit=limit, after=after)
        page = ConversationPage(items=items, next_cursor=following.encode() if following else None)
        return json_response(page, headers=admitted.headers)

    async def get(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        return json_response(conversation, headers=admitted.headers)

    async def send(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True, widget=True)
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        body = await read_json(request, UserMessage, self._settings.gateway_max_body)
        message = _user_message(body, conversation)
        if body.message_id is not None or body.message is not None:
            await self._conversations.claim(admitted.tenant, conversation, message)
        timeout = self._settings.gateway_timeout
        if "text/event-stream" not in request.headers.get("accept", ""):
            turn: Turn = await self._conversations.send(admitted.tenant, conversation, message, timeout)
            return json_response(turn, headers=admitted.headers)
        clock = self._conversations.metrics.turn(conversation.agent, conversation.skill)
        # Follow the conversation's events before the turn starts, so nothing is missed.
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(self._feed.open(admitted.tenant, conversation.id))
        try:
            task_id = await self._conversations.start(admitted.tenant, conversation, message, timeout)
        except BaseException:
            await feed.aclose()
            raise

        window = self._conversations.window(timeout)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in self._relay(
                    events, task_id, window, tenant=admitted.tenant, first_token=clock.first_token
                ):
                    yield chunk
            finally:
                await feed.aclose()

        return sse_response(stream(), {**admitted.headers, "Hivewire-Task-Id": task_id})

    async def history(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        turns = await self._conversations.history(admitted.tenant, request.path_params["cid"])
        entries = [HistoryEntry(role=t.role, content=t.content) for t in turns]
        history = History(conversation_id=request.path_params["cid"], messages=entries)
        return json_response(history, headers=admitted.headers)

    async def follow(self, request: Request) -> Response:
        """Replay a conversation's events after ``Last-Event-ID`` (or ``?after=``) and follow new ones.

        The stream ends at the end of the first turn that ends in it, or after
        twice the gateway's timeout and the task ack wait (the longest a turn may
        take, restarted once) without one; with ``?follow=true``, when the client leaves.
        """
        admitted = await self._guard.admit(request, widget=True)
        # An empty Last-Event-ID is none (EventSource sends none before its first event).
        after = event_id(request.headers.get("last-event-id") or request.query_params.get("after", "0"))
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        follow = request.query_params.get("follow", "false").lower() in ("1", "true", "yes")
        # Long enough for a turn in it to end, even one run again after its replica died.
        window = self._conversations.window(self._settings.gateway_timeout)
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(
            self._feed.open(admitted.tenant, conversation.id, after=after)
        )

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in self._relay(events, None, None if follow else window, follow=follow):
                    yield chunk
            finally:
                await feed.aclose()

        return sse_response(stream(), admitted.headers)

    async def _relay(
        self,
        events: Feed,
        task_id: str | None,
        timeout: float | None,
        *,
        follow: bool = False,
        tenant: str | None = None,
        first_token: Callable[[], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """SSE frames of ``events`` until ``task_id``'s turn ends (any turn when ``None``; with
        ``follow``, until the client leaves); ``first_token`` is called as the first piece of the
        reply (an artifact) is sent.

        With ``tenant`` (the turn's own stream), the turn's completion is sent once the
        turn is recorded, so the client that sees it finds the turn in the history.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout + 5.0
        ping = self._settings.gateway_sse_ping
        yield sse_comment("hivewire")
        while deadline is None or loop.time() < deadline:
            wait = ping if deadline is None else min(ping, max(0.0, deadline - loop.time()))
            found = await events.next(wait)
            if found is None:
                yield sse_comment("ping")
                continue
            event = with_problem(found.event)
            update = found.event.status_update
            if (
                tenant is not None
                and task_id is not None
                and ends(found.event, task_id)
                and not isinstance(update, msgspec.UnsetType)
                and update.status.state is TaskState.COMPLETED
            ):
                await self._conversations.recorded(tenant, task_id)
            yield sse_event(_encoder.encode(event), name=event_name(event), event_id=found.seq)
            if first_token is not None and not isinstance(found.event.artifact_update, msgspec.UnsetType):
                first_token()
            if follow:
                continue
            if task_id is None:
                if not isinstance(update, msgspec.UnsetType) and update.status.state.terminal:
                    return
            elif ends(found.event, task_id):
                return


def _user_message(body: UserMessage, conversation: Conversation) -> Message:
    if (body.text is None) == (body.message is None):
        raise Problem(
            422, "invalid-body", "Send text or a message", "give exactly one of 'text' and 'message'"
        )
    if body.message is not None:
        if body.message.role is not Role.USER:
            raise Problem(
                422, "invalid-body", "Not a user message", "a message sent to a conversation has role user"
            )
        check_message_id(body.message.message_id, "message.messageId")
        return msgspec.structs.replace(body.message, context_id=conversation.id)
    assert body.text is not None
    if not body.text.strip():
        raise Problem(422, "invalid-body", "Empty message", "'text' is empty")
    message = Message.user_text(body.text, context_id=conversation.id)
    if body.message_id is not None:
        message = msgspec.structs.replace(message, message_id=check_message_id(body.message_id))
    return message


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "transfer-encoding" in request.headers
