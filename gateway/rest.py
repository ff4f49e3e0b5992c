"""The REST API: conversations (JSON or streamed), agents and their skills, durable tasks, usage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agents.mesh import Mesh
from agents.payloads import to_message
from agents.registry import LiveAgent
from bus.a2a import Message, Role, Task, TaskState, new_id
from bus.errors import NoResponders
from gateway.discovery import live_agent
from gateway.events import ConversationFeed, Feed, event_name, sse_comment, sse_event
from gateway.guard import Guard
from gateway.http import int_param, json_response, read_json
from gateway.index import Cursor
from gateway.limits import Usage, UsageMeter, spend_of
from gateway.problems import Problem
from gateway.settings import GatewaySettings
from gateway.turns import Conversation, Conversations, Turn, ends

__all__ = [
    "AgentSummary",
    "ConversationPage",
    "HistoryEntry",
    "Identity",
    "NewConversation",
    "RestApi",
    "SkillInput",
    "SkillOutput",
    "TaskPage",
    "UserMessage",
]

_encoder = msgspec.json.Encoder()


class NewConversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start a conversation with an agent's skill (the gateway's defaults when left out)."""

    agent: str | None = None
    skill: str | None = None


class UserMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """One message from the user: plain ``text``, or a full A2A ``message``.

    ``messageId`` (or the message's own id) makes a resend of the same message (a
    client retrying after a dropped connection) a 409 instead of a second turn.
    """

    text: str | None = None
    message_id: str | None = None
    message: Message | None = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded turn of a conversation."""

    role: str
    content: str


class SkillInput(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The input of a skill call or task: any JSON value the skill's input schema accepts."""

    input: Any = None
    message_id: str | None = None


class SkillOutput(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A skill's reply: its output value and the full A2A message it came in."""

    output: Any
    message: Message


class AgentSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A live agent as listed by the API."""

    name: str
    description: str
    version: str
    replicas: int
    skills: list[str]
    in_flight: int = 0  # requests its replicas are handling, as of their last heartbeats


class ConversationPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Conversations, most recently active first; pass ``nextCursor`` back as ``cursor`` for more."""

    items: list[Conversation]
    next_cursor: str | None = None


class TaskPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Tasks, the latest change first; pass ``nextCursor`` back as ``cursor`` for more."""

    items: list[Task]
    next_cursor: str | None = None


class Identity(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Who the API key speaks for."""

    tenant: str


class RestApi:
    """The REST routes, over the services they need."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        guard: Guard,
        conversations: Conversations,
        feed: ConversationFeed,
        usage: UsageMeter,
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._conversations = conversations
        self._feed = feed
        self._usage = usage

    def routes(self) -> list[Route]:
        """Every REST route, the ones called on every turn first.

        No two paths overlap, so the order changes no answer; Starlette tries the
        routes one by one, so it saves the busiest requests a dozen futile matches.
        """
        return [
            Route("/v1/agents/{agent}/skills/{skill}", self.invoke_skill, methods=["POST"]),
            Route("/v1/conversations/{cid}/messages", self.send_message, methods=["POST"]),
            Route("/v1/agents/{agent}/skills/{skill}/tasks", self.submit_task, methods=["POST"]),
            Route("/v1/tasks/{task_id}", self.get_task, methods=["GET"]),
            Route("/v1/conversations", self.create_conversation, methods=["POST"]),
            Route("/v1/conversations", self.list_conversations, methods=["GET"]),
            Route("/v1/conversations/{cid}/events", self.follow_events, methods=["GET"]),
            Route("/v1/conversations/{cid}", self.get_conversation, methods=["GET"]),
            Route("/v1/conversations/{cid}/messages", self.read_history, methods=["GET"]),
            Route("/v1/agents", self.list_agents, methods=["GET"]),
            Route("/v1/agents/{agent}", self.get_agent, methods=["GET"]),
            Route("/v1/tasks/{task_id}/cancel", self.cancel_task, methods=["POST"]),
            Route("/v1/tasks", self.list_tasks, methods=["GET"]),
            Route("/v1/usage", self.read_usage, methods=["GET"]),
            Route("/v1/usage/history", self.read_usage_history, methods=["GET"]),
            Route("/v1/me", self.identity, methods=["GET"]),
        ]

    # Conversations

    async def create_conversation(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        body = (
            await read_json(request, NewConversation, self._settings.gateway_max_body)
            if await _has_body(request)
            else NewConversation()
        )
        agent_name = body.agent or self._settings.gateway_agent
        skill_name = body.skill or self._settings.gateway_skill
        agent = await live_agent(self._mesh.registry, agent_name, skill_name)
        schema = agent.card.skill_schemas().get(skill_name)
        conversation = await self._conversations.create(
            admitted.tenant, agent_name, skill_name, streaming=schema is not None and schema.streaming
        )
        headers = {**admitted.headers, "Location": f"/v1/conversations/{conversation.id}"}
        return json_response(conversation, 201, headers)

    async def list_conversations(self, request: Request) -> Response:
        """The tenant's conversations, newest activity first (``?limit=`` up to 100, ``?cursor=``)."""
        admitted = await self._guard.admit(request)
        limit = int_param(request, "limit", 20, low=1, high=100)
        raw = request.query_params.get("cursor")
        after = Cursor.decode(raw) if raw else None
        items, following = await self._conversations.page(admitted.tenant, limit=limit, after=after)
        page = ConversationPage(items=items, next_cursor=following.encode() if following else None)
        return json_response(page, headers=admitted.headers)

    async def get_conversation(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        return json_response(conversation, headers=admitted.headers)

    async def send_message(self, request: Request) -> Response:
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
        # Follow the conversation's events before the turn starts, so nothing is missed.
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(self._feed.open(admitted.tenant, conversation.id))
        try:
            task_id = await self._conversations.start(admitted.tenant, conversation, message, timeout)
        except BaseException:
            await feed.aclose()
            raise

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in self._relay(events, task_id, timeout):
                    yield chunk
            finally:
                await feed.aclose()

        return _sse(stream(), {**admitted.headers, "Hivewire-Task-Id": task_id})

    async def read_history(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, widget=True)
        turns = await self._conversations.history(admitted.tenant, request.path_params["cid"])
        entries = [HistoryEntry(role=t.role, content=t.content) for t in turns]
        return json_response(
            {"conversationId": request.path_params["cid"], "messages": entries}, headers=admitted.headers
        )

    async def follow_events(self, request: Request) -> Response:
        """Replay a conversation's events after ``Last-Event-ID`` (or ``?after=``) and follow new ones.

        The stream ends at the end of the first turn that ends in it (or, with
        ``?follow=true``, when the client leaves).
        """
        admitted = await self._guard.admit(request, widget=True)
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        if not raw.isdigit():
            raise Problem(400, "bad-event-id", "Invalid event id", f"{raw!r} is not an event id")
        follow = request.query_params.get("follow", "false").lower() in ("1", "true", "yes")
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(
            self._feed.open(admitted.tenant, conversation.id, after=int(raw))
        )

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in self._relay(
                    events, None, None if follow else self._settings.gateway_timeout, follow=follow
                ):
                    yield chunk
            finally:
                await feed.aclose()

        return _sse(stream(), admitted.headers)

    async def _relay(
        self, events: Feed, task_id: str | None, timeout: float | None, *, follow: bool = False
    ) -> AsyncIterator[bytes]:
        """SSE frames of ``events`` until ``task_id``'s turn ends (any turn when ``None``; with
        ``follow``, until the client leaves)."""
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
            yield sse_event(_encoder.encode(found.event), name=event_name(found.event), event_id=found.seq)
            update = found.event.status_update
            if follow:
                continue
            if task_id is None:
                if not isinstance(update, msgspec.UnsetType) and update.status.state.terminal:
                    return
            elif ends(found.event, task_id):
                return

    # Agents

    async def list_agents(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        live = await self._mesh.registry.agents()
        return json_response([_summary(agent) for agent in live], headers=admitted.headers)

    async def get_agent(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        agent = await live_agent(self._mesh.registry, request.path_params["agent"])
        return json_response({"replicas": agent.replicas, "card": agent.card}, headers=admitted.headers)

    async def invoke_skill(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True)
        agent_name, skill = request.path_params["agent"], request.path_params["skill"]
        body = await read_json(request, SkillInput, self._settings.gateway_max_body)
        caller = self._mesh.caller(admitted.tenant, timeout=self._settings.gateway_timeout)
        try:
            reply: Message = await caller.call(agent_name, skill, _input_message(body, caller.context_id))
        except Exception as exc:
            await self._explain_missing(exc, agent_name, skill)
            raise
        await self._usage.record(admitted.tenant, spend=spend_of(reply))
        return json_response(SkillOutput(output=_output(reply), message=reply), headers=admitted.headers)

    # Durable tasks

    async def submit_task(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True)
        agent_name, skill = request.path_params["agent"], request.path_params["skill"]
        body = await read_json(request, SkillInput, self._settings.gateway_max_body)
        await live_agent(self._mesh.registry, agent_name, skill)
        message_id = body.message_id or request.headers.get("idempotency-key")
        # With the client's own message id the submit looks for an earlier one first;
        # without, the input gets a fresh id and is queued at once.
        submitted: object = _input_value(body)
        if message_id is not None:
            submitted = _input_message(body, new_id(), message_id=message_id)
        task = await self._mesh.tasks.submit(
            admitted.tenant, agent_name, skill, submitted, context_id=new_id()
        )
        headers = {**admitted.headers, "Location": f"/v1/tasks/{task.id}"}
        return json_response(task, 202, headers)

    async def get_task(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        task_id = request.path_params["task_id"]
        wait = request.query_params.get("wait")
        task: Task
        if wait is not None:
            try:
                seconds = min(float(wait), self._settings.gateway_timeout)
            except ValueError:
                raise Problem(
                    400, "bad-wait", "Invalid wait", f"{wait!r} is not a number of seconds"
                ) from None
            await self._mesh.tasks.get(admitted.tenant, task_id)
            try:
                task = await self._mesh.tasks.wait(admitted.tenant, task_id, timeout=seconds)
            except TimeoutError:
                task = await self._mesh.tasks.get(admitted.tenant, task_id)
        else:
            task = await self._mesh.tasks.get(admitted.tenant, task_id)
        return json_response(task, headers=admitted.headers)

    async def cancel_task(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        task = await self._mesh.tasks.cancel(admitted.tenant, request.path_params["task_id"])
        return json_response(task, headers=admitted.headers)

    async def list_tasks(self, request: Request) -> Response:
        """The tenant's tasks (``?contextId=``, ``?state=``, ``?agent=``, ``?limit=``, ``?cursor=``)."""
        admitted = await self._guard.admit(request)
        limit = int_param(request, "limit", 50, low=1, high=200)
        state = None
        if raw_state := request.query_params.get("state"):
            try:
                state = TaskState(raw_state)
            except ValueError:
                raw_state = raw_state.upper()
                wanted = raw_state if raw_state.startswith("TASK_STATE_") else "TASK_STATE_" + raw_state
                try:
                    state = TaskState(wanted)
                except ValueError:
                    raise Problem(
                        400, "bad-state", "Invalid state", f"{raw_state!r} is no task state"
                    ) from None
        raw = request.query_params.get("cursor")
        before = None
        if raw:
            cursor = Cursor.decode(raw)
            before = (cursor.at, cursor.id)
        tasks, following = await self._mesh.tasks.list_recorded(
            admitted.tenant,
            context_id=request.query_params.get("contextId"),
            state=state,
            agent=request.query_params.get("agent"),
            limit=limit,
            before=before,
        )
        next_cursor = Cursor(at=following[0], id=following[1]).encode() if following else None
        return json_response(TaskPage(items=tasks, next_cursor=next_cursor), headers=admitted.headers)

    async def read_usage_history(self, request: Request) -> Response:
        """The tenant's usage hour by hour (``?hours=``, 1 to 192, default 24)."""
        admitted = await self._guard.admit(request)
        hours = int_param(request, "hours", 24, low=1, high=192)
        return json_response(await self._usage.history(admitted.tenant, hours), headers=admitted.headers)

    async def identity(self, request: Request) -> Response:
        """The tenant the request's key belongs to (the console's sign-in)."""
        admitted = await self._guard.admit(request)
        return json_response(Identity(tenant=admitted.tenant), headers=admitted.headers)

    async def read_usage(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        _, _, daily = self._settings.limits_for(admitted.tenant)
        usage: Usage = await self._usage.read(admitted.tenant, daily)
        return json_response(usage, headers=admitted.headers)

    async def _explain_missing(self, exc: Exception, agent_name: str, skill: str) -> None:
        """Turn "nobody answered" into 404 when the agent (or its skill) does not exist at all."""
        if isinstance(exc, NoResponders):
            await live_agent(self._mesh.registry, agent_name, skill)


def _summary(agent: LiveAgent) -> AgentSummary:
    return AgentSummary(
        name=agent.name,
        description=agent.card.description,
        version=agent.card.version,
        replicas=agent.replicas,
        skills=[skill.id for skill in agent.card.skills],
        in_flight=agent.load.in_flight,
    )


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
        return msgspec.structs.replace(body.message, context_id=conversation.id)
    assert body.text is not None
    if not body.text.strip():
        raise Problem(422, "invalid-body", "Empty message", "'text' is empty")
    message = Message.user_text(body.text, context_id=conversation.id)
    if body.message_id is not None:
        if not 0 < len(body.message_id) <= 128:
            raise Problem(422, "invalid-body", "Invalid messageId", "'messageId' is 1 to 128 characters")
        message = msgspec.structs.replace(message, message_id=body.message_id)
    return message


def _input_value(body: SkillInput) -> object:
    """What the client asked the skill to take (no input: an empty text)."""
    return body.input if body.input is not None else ""


def _input_message(body: SkillInput, context_id: str, *, message_id: str | None = None) -> Message:
    message = to_message(_input_value(body), role=Role.USER, context_id=context_id)
    if message_id is not None:
        message = msgspec.structs.replace(message, message_id=message_id)
    return message


def _output(reply: Message) -> Any:
    """The value a reply carries: its data, or its text."""
    for part in reply.parts:
        if not isinstance(part.data, msgspec.UnsetType) and part.data is not None:
            return part.data
    return reply.text


async def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "transfer-encoding" in request.headers


def _sse(stream: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
