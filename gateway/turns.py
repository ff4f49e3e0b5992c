"""Conversation turns: a user's message to the conversation's agent, its reply, history and usage.

A JSON turn calls the conversation's agent over core request/reply (the fast
path for chat). A streamed turn is durable work the agent owns
(:mod:`agents.turns`): the gateway publishes the user's message and a
``working`` status to the conversation's events, queues the turn, and from
then on only reads the event log, where the agent's replica publishes the
turn's tokens and its end. The turn runs to its end when the HTTP client
leaves and when the gateway dies, so a client that reconnects to any replica
finds the whole turn on the bus; whichever gateway takes the ended turn
records it (:mod:`gateway.turn_records`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time

import msgspec

from agents.errors import StateConflict
from agents.events import ConversationEvents, status_event
from agents.handoff import HANDOFF_KEY, Handoff, handled
from agents.history import ConversationHistory
from agents.llm.messages import ChatMessage
from agents.mesh import Mesh
from agents.turns import TRACE_KEY
from bus import logs
from bus.a2a import Message, Part, Role, StreamResponse, Task, TaskState, new_id
from gateway.discovery import reachable
from gateway.index import RECORD as _RECORD
from gateway.index import ConversationIndex, Cursor
from gateway.metrics import GatewayMetrics
from gateway.problems import Problem
from gateway.replies import Reply
from gateway.tracing import current_trace_id
from gateway.usage import UsageMeter, spend_of

__all__ = ["HUMAN_KEY", "TRACE_KEY", "Conversation", "Conversations", "Turn", "ends"]

log = logging.getLogger(__name__)

# Where a reply's metadata marks a person's reply (TRACE_KEY: where it names its turn's trace).
HUMAN_KEY = "hivewire.human"
# A conversation's title: the start of its first message.
_TITLE = 80


class Conversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation: which agent and skill its turns go to."""

    id: str
    agent: str
    skill: str
    created_at: float
    streaming: bool = False  # the skill streams its reply (an async generator)
    updated_at: float = 0.0  # the last turn's time (0: none yet)
    title: str = ""  # the start of the first message
    turns: int = 0


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

    def __init__(
        self,
        mesh: Mesh,
        history: ConversationHistory,
        usage: UsageMeter,
        index: ConversationIndex,
        *,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._mesh = mesh
        self.metrics = metrics or GatewayMetrics()
        self._history = history
        self._usage = usage
        self._index = index
        self._events = ConversationEvents(mesh.bus)

    async def create(self, tenant: str, agent: str, skill: str, *, streaming: bool = False) -> Conversation:
        """A new conversation of ``tenant`` with ``agent``'s ``skill``."""
        conversation = Conversation(
            id=new_id(), agent=agent, skill=skill, created_at=time.time(), streaming=streaming
        )
        await self._mesh.state(tenant, conversation.id).put(_RECORD, conversation)
        await self._index.touch(tenant, conversation)
        return conversation

    async def claim(self, tenant: str, conversation: Conversation, message: Message) -> None:
        """Take ``message``'s id for one turn of the conversation, or refuse a message sent twice.

        Raises:
            Problem: 409, this message already started a turn here.
        """
        key = "turn-" + hashlib.sha256(message.message_id.encode()).hexdigest()[:32]
        try:
            await self._mesh.state(tenant, conversation.id).put(key, message.message_id, revision=0)
        except StateConflict:
            raise Problem(
                409,
                "duplicate-message",
                "Message already sent",
                f"{message.message_id!r} started a turn already",
            ) from None

    async def page(
        self, tenant: str, *, limit: int, after: Cursor | None = None
    ) -> tuple[list[Conversation], Cursor | None]:
        """``tenant``'s conversations, most recently active first, and the cursor of the next page."""
        return await self._index.page(tenant, limit=limit, after=after)

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
        logs.bind(conversation_id=conversation.id, task_id=task_id)
        message = msgspec.structs.replace(message, context_id=conversation.id, task_id=task_id)
        # The conversation's events are its log: the question and the outcome go there
        # for a JSON turn too (its tokens already do, from the agent), so a transcript
        # read from them (the console's) is whole, however each turn was asked.
        await self._events.publish(tenant, conversation.id, StreamResponse(message=message))
        reply = _traced(await self._call(tenant, conversation, message, timeout))
        await self._events.publish(
            tenant,
            conversation.id,
            status_event(
                task_id,
                conversation.id,
                TaskState.COMPLETED,
                msgspec.structs.replace(reply, context_id=conversation.id, task_id=task_id),
            ),
        )
        await self._record(tenant, conversation.id, message, reply)
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

        The turn is queued as durable work for the conversation's agent, which
        publishes its events and ends it with a terminal status event for the
        task id: completed (with the reply as its message) or failed (with the
        error). Each attempt at it has ``timeout`` seconds.

        Raises:
            Problem: 503, no replica of the agent is live to run it (as a call would answer).
        """
        if await reachable(self._mesh, conversation.agent, tenant=tenant) is None:
            # Queued, it would wait for a replica the client has no reason to expect.
            raise Problem(
                503, "no-replica", "No live replica", f"no replica of {conversation.agent!r} is running"
            )
        task_id = message.task_id or new_id()
        logs.bind(conversation_id=conversation.id, task_id=task_id)
        message = msgspec.structs.replace(message, context_id=conversation.id, task_id=task_id)
        await self._events.publish(tenant, conversation.id, StreamResponse(message=message))
        await self._events.publish(
            tenant, conversation.id, status_event(task_id, conversation.id, TaskState.WORKING)
        )
        trace_id = current_trace_id()
        await self._mesh.turns.start(
            tenant,
            conversation.agent,
            conversation.skill,
            message,
            timeout=timeout,
            metadata=None if trace_id is None else {TRACE_KEY: trace_id},
        )
        return task_id

    def window(self, timeout: float) -> float:
        """How long a streamed turn with ``timeout`` per attempt may take in all: one attempt, the
        ack wait after its replica died, and a second attempt."""
        return 2 * timeout + self._mesh.settings.turn_ack_wait

    async def recorded(self, tenant: str, task_id: str) -> None:
        """Wait (briefly) until a gateway has recorded the completed streamed turn ``task_id``, so
        a client that saw its end finds it in the history and usage."""
        if not await self._mesh.turns.recorded(tenant, task_id, timeout=_RECORDED_WITHIN):
            log.warning("turn %s was not recorded within %.0fs of its end", task_id, _RECORDED_WITHIN)

    async def record_turn(self, tenant: str, turn: Task) -> None:
        """Record a streamed turn its agent ended (completed) in the conversation's history and usage."""
        reply = turn.status.message
        if turn.context_id is None or not turn.history or reply is None:
            return
        await self._record(tenant, turn.context_id, turn.history[0], reply)

    async def _call(
        self, tenant: str, conversation: Conversation, message: Message, timeout: float
    ) -> Message:
        clock = self.metrics.turn(conversation.agent, conversation.skill)
        try:
            reply = await self._ask(tenant, conversation, message, timeout)
        except Exception as exc:
            # Said once here, with the turn's ids and trace (JSON logs), whoever reports it to the client.
            log.warning("turn with %s.%s failed: %s", conversation.agent, conversation.skill, exc)
            clock.end(exc)
            raise
        clock.end()
        return reply

    async def _ask(
        self, tenant: str, conversation: Conversation, message: Message, timeout: float
    ) -> Message:
        caller = self._mesh.caller(tenant, context_id=conversation.id, timeout=timeout)
        if not conversation.streaming:
            return await caller.call(conversation.agent, conversation.skill, message)
        # A streaming skill's events come back to us: gather the reply they add up to.
        reply = Reply(context_id=conversation.id, task_id=message.task_id)
        async with caller.stream(conversation.agent, conversation.skill, message) as events:
            async for event in events:
                reply.add(event)
        return reply.message()

    async def reply_as_person(
        self, tenant: str, conversation: Conversation, text: str, author: str
    ) -> Message:
        """A person's answer, as the conversation's agent: into its events and history, and its
        hand-off (if one is open) marked handled."""
        reply = Message(
            message_id=new_id(),
            role=Role.AGENT,
            parts=(Part.text_part(text),),
            context_id=conversation.id,
            metadata={HUMAN_KEY: {"author": author}},
        )
        await self._events.publish(tenant, conversation.id, StreamResponse(message=reply))
        with contextlib.suppress(_Gone):  # no hand-off: nothing to mark
            await self._mesh.state(tenant, conversation.id).update(
                HANDOFF_KEY, Handoff, lambda found: handled(_present(found), author)
            )
        await asyncio.gather(
            self._history.append(tenant, conversation.id, ChatMessage(role="assistant", content=text)),
            self._touch(tenant, conversation.id, ""),
        )
        return reply

    async def _record(self, tenant: str, conversation_id: str, message: Message, reply: Message) -> None:
        await asyncio.gather(
            # Written once per turn (a message id is one turn of its conversation), however often
            # it is recorded: an ended turn is redelivered if its recorder died before the ack.
            self._history.append(
                tenant,
                conversation_id,
                ChatMessage(role="user", content=message.text),
                ChatMessage(role="assistant", content=reply.text),
                write_id=message.message_id,
            ),
            self._usage.record(tenant, spend=spend_of(reply)),
            self._touch(tenant, conversation_id, message.text, turn=True),
        )

    async def _touch(self, tenant: str, conversation_id: str, text: str, *, turn: bool = False) -> None:
        """The conversation's record after a turn: its time, its count, and its title if it had none."""

        def change(found: Conversation | None) -> Conversation:
            if found is None:  # expired meanwhile: nothing to update
                raise _Gone
            return msgspec.structs.replace(
                found,
                updated_at=time.time(),
                title=found.title or " ".join(text.split())[:_TITLE],
                turns=found.turns + (1 if turn else 0),
            )

        try:
            updated = await self._mesh.state(tenant, conversation_id).update(_RECORD, Conversation, change)
        except _Gone:
            return
        await self._index.touch(tenant, updated.value)


# How long a streamed turn's end waits for the turn's record (history, usage) before it is sent.
_RECORDED_WITHIN = 2.0


class _Gone(Exception):
    """The conversation's record expired during a turn."""


def _present(handoff: Handoff | None) -> Handoff:
    if handoff is None:
        raise _Gone
    return handoff


def _traced(reply: Message) -> Message:
    """``reply`` naming the trace of the turn in its metadata (when tracing is on)."""
    trace_id = current_trace_id()
    if trace_id is None:
        return reply
    return msgspec.structs.replace(reply, metadata={**(reply.metadata or {}), TRACE_KEY: trace_id})


def ends(event: StreamResponse, task_id: str) -> bool:
    """True when ``event`` is the terminal status of the turn ``task_id``."""
    update = event.status_update
    return (
        not isinstance(update, msgspec.UnsetType)
        and update.task_id == task_id
        and update.status.state.terminal
    )
