"""Conversation turns: a user's message to the conversation's agent, its reply, history and usage.

A turn calls the conversation's agent over core request/reply (the fast path
for chat). A streamed turn also publishes its start and its end to the
conversation's events, where the agent's tokens already go, and runs to its
end even when the HTTP client leaves, so a client that reconnects finds the
whole turn on the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from agents.events import ConversationEvents, status_event
from agents.history import ConversationHistory
from agents.llm.messages import ChatMessage
from agents.mesh import Mesh
from bus.a2a import Message, Part, Role, StreamResponse, TaskState, new_id
from gateway.limits import UsageMeter, spend_of
from gateway.problems import Problem, problem_from

__all__ = ["Conversation", "Conversations", "Reply", "Turn", "ends", "failed_event"]

log = logging.getLogger(__name__)

_RECORD = "conversation"


class Conversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation: which agent and skill its turns go to."""

    id: str
    agent: str
    skill: str
    created_at: float
    streaming: bool = False  # the skill streams its reply (an async generator)


class Turn(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The reply to one user message."""

    conversation_id: str
    task_id: str
    agent: str
    skill: str
    text: str
    message: Message


class Conversations:
    """Creates conversations and runs their turns (stateless: everything lives on the bus and in Redis)."""

    def __init__(self, mesh: Mesh, history: ConversationHistory, usage: UsageMeter) -> None:
        self._mesh = mesh
        self._history = history
        self._usage = usage
        self._events = ConversationEvents(mesh.bus)
        self._running: set[asyncio.Task[None]] = set()

    async def create(self, tenant: str, agent: str, skill: str, *, streaming: bool = False) -> Conversation:
        """A new conversation of ``tenant`` with ``agent``'s ``skill``."""
        conversation = Conversation(
            id=new_id(), agent=agent, skill=skill, created_at=time.time(), streaming=streaming
        )
        await self._mesh.state(tenant, conversation.id).put(_RECORD, conversation)
        return conversation

    async def get(self, tenant: str, conversation_id: str) -> Conversation:
        """``tenant``'s conversation (another tenant's is as missing as one that never was).

        Raises:
            Problem: 404, no such conversation for this tenant.
        """
        found = await self._mesh.state(tenant, conversation_id).get(_RECORD, Conversation)
        if found is None:
            raise Problem(404, "conversation-not-found", "No such conversation", conversation_id)
        return found.value

    async def history(self, tenant: str, conversation_id: str) -> list[ChatMessage]:
        """The conversation's recorded turns, oldest first."""
        await self.get(tenant, conversation_id)
        return await self._history.load(tenant, conversation_id, max_turns=10_000, token_budget=10**9)

    async def send(self, tenant: str, conversation: Conversation, message: Message, timeout: float) -> Turn:
        """Run one turn and return the agent's reply."""
        task_id = message.task_id or new_id()
        message = msgspec.structs.replace(message, context_id=conversation.id, task_id=task_id)
        reply = await self._call(tenant, conversation, message, timeout, publish=False)
        await self._record(tenant, conversation, message, reply)
        return Turn(
            conversation_id=conversation.id,
            task_id=task_id,
            agent=conversation.agent,
            skill=conversation.skill,
            text=reply.text,
            message=reply,
        )

    async def start(self, tenant: str, conversation: Conversation, message: Message, timeout: float) -> str:
        """Start a turn whose progress goes to the conversation's events; return its task id.

        The turn ends with a terminal status event for the task id: completed
        (with the reply as its message) or failed (with the problem).
        """
        task_id = message.task_id or new_id()
        message = msgspec.structs.replace(message, context_id=conversation.id, task_id=task_id)
        await self._events.publish(
            tenant, conversation.id, status_event(task_id, conversation.id, TaskState.WORKING)
        )
        task = asyncio.create_task(self._run(tenant, conversation, message, task_id, timeout))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task_id

    async def drain(self, grace: float) -> None:
        """Let running turns finish (up to ``grace`` seconds), then cancel the rest."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=grace)
            for task in pending:
                task.cancel()

    async def _run(
        self, tenant: str, conversation: Conversation, message: Message, task_id: str, timeout: float
    ) -> None:
        try:
            reply = await self._call(tenant, conversation, message, timeout, publish=True)
        except Exception as exc:  # noqa: BLE001 - every failure ends the turn as a failed status
            end = failed_event(exc, task_id, conversation.id)
        else:
            reply = msgspec.structs.replace(reply, context_id=conversation.id, task_id=task_id)
            end = status_event(task_id, conversation.id, TaskState.COMPLETED, reply)
            try:
                await self._record(tenant, conversation, message, reply)
            except Exception:
                log.exception("recording a turn of conversation %s failed", conversation.id)
        await self._events.publish(tenant, conversation.id, end)

    async def _call(
        self, tenant: str, conversation: Conversation, message: Message, timeout: float, *, publish: bool
    ) -> Message:
        caller = self._mesh.caller(tenant, context_id=conversation.id, timeout=timeout)
        if not conversation.streaming:
            return await caller.call(conversation.agent, conversation.skill, message)
        # A streaming skill's events come back to us: pass them on to the
        # conversation (when streaming) and gather the reply they add up to.
        reply = Reply(context_id=conversation.id, task_id=message.task_id)
        async with caller.stream(conversation.agent, conversation.skill, message) as events:
            async for event in events:
                if publish:
                    await self._events.publish(tenant, conversation.id, event)
                reply.add(event)
        return reply.message()

    async def _record(
        self, tenant: str, conversation: Conversation, message: Message, reply: Message
    ) -> None:
        await asyncio.gather(
            self._history.append(
                tenant,
                conversation.id,
                ChatMessage(role="user", content=message.text),
                ChatMessage(role="assistant", content=reply.text),
            ),
            self._usage.record(tenant, spend=spend_of(reply)),
        )


class Reply:
    """The reply a streaming skill's events add up to: their parts, the text ones joined into one."""

    def __init__(self, *, context_id: str | None, task_id: str | None) -> None:
        self._context_id = context_id
        self._task_id = task_id
        self._parts: list[Part] = []

    def add(self, event: StreamResponse) -> StreamResponse:
        """Take in ``event`` (a chunk or a message; status events add nothing) and return it."""
        if not isinstance(event.artifact_update, msgspec.UnsetType):
            self._parts.extend(event.artifact_update.artifact.parts)
        elif not isinstance(event.message, msgspec.UnsetType):
            self._parts.extend(event.message.parts)
        return event

    def message(self) -> Message:
        """The reply so far, as one agent message."""
        text = "".join(p.text for p in self._parts if isinstance(p.text, str))
        return Message(
            message_id=new_id(),
            role=Role.AGENT,
            parts=(Part.text_part(text),) if text else tuple(self._parts),
            context_id=self._context_id,
            task_id=self._task_id,
        )


def failed_event(exc: Exception, task_id: str, context_id: str | None) -> StreamResponse:
    """The terminal status of a turn that failed with ``exc`` (the problem in the message's metadata)."""
    note = Message(
        message_id=new_id(),
        role=Role.AGENT,
        parts=(),
        context_id=context_id,
        task_id=task_id,
        metadata={"problem": problem_from(exc).body()},
    )
    return status_event(task_id, context_id, TaskState.FAILED, note)


def ends(event: StreamResponse, task_id: str) -> bool:
    """True when ``event`` is the terminal status of the turn ``task_id``."""
    update = event.status_update
    return (
        not isinstance(update, msgspec.UnsetType)
        and update.task_id == task_id
        and update.status.state.terminal
    )
