"""What a skill handler is given: the request, its conversation, and the mesh around it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from opentelemetry import metrics

from agents.calls import Call, Caller, Outcome, read_reply
from agents.events import ConversationEvents, chunk_event, status_event
from agents.history import ConversationHistory
from agents.llm.client import LLMClient, Scope
from agents.llm.models import Model
from agents.llm.turn import TurnLLM
from agents.mcp.calls import McpCalls
from agents.mcp.pool import McpClients
from agents.state import ConversationState
from agents.tasks import Tasks
from agents.tools.cache import ToolCache
from agents.usage import spend_of
from bus.a2a import Message, Part, StreamResponse, Task, TaskState, new_id
from bus.envelope import Envelope
from bus.stream import ReplyStream

__all__ = ["Context"]

R = TypeVar("R")

_NO_SERVERS = McpClients(())


class Context:
    """The handler's view of one request.

    Attributes:
        agent: the agent handling the request.
        skill: the skill called.
        tenant: on whose behalf (taken from the subject, which NATS permissions guard).
        message: the A2A message received.
        context_id: the conversation; calls made through this context join it.
        task_id: the durable task's id, or this turn's id for an interactive request.
        envelope: the transport metadata (deadline, hops, message id).
        state: the conversation's shared state (a blackboard for every agent in it).
        llm: model calls for this request (cached, accounted, traced; offline mode without an endpoint).
        history: the conversations' turns (``await ctx.history.load(ctx.tenant, ctx.context_id)``).
        task_history: a durable task's messages before this one: for a task that asked for more
            input (``raise InputRequired(...)``) and was continued, what the user and the skill said.
        tool_cache: the process's tool-result cache (a :class:`~agents.tools.Toolbox` uses it).
        meter: an OpenTelemetry meter of the process's provider, for the agent's own metrics
            (create instruments once per meter, not per request: see ``agents/desk/triage.py``).
        mcp: the agent's MCP tool servers: ``await ctx.mcp.call(server, tool, arguments)``, or
            ``await ctx.mcp.toolbox()`` for a model (see :mod:`agents.mcp`).
    """

    def __init__(
        self,
        *,
        agent: str,
        skill: str,
        tenant: str,
        message: Message,
        envelope: Envelope,
        task_id: str,
        caller: Caller,
        events: ConversationEvents,
        state: ConversationState,
        tasks: Tasks,
        llm: LLMClient,
        models: Mapping[str, Model],
        history: ConversationHistory,
        tool_cache: ToolCache,
        mcp: McpClients | None = None,
        resource: object = None,
        task_history: tuple[Message, ...] = (),
        meter: metrics.Meter | None = None,
    ) -> None:
        self.agent = agent
        self.skill = skill
        self.tenant = tenant
        self.message = message
        self.envelope = envelope
        self.task_id = task_id
        self.state = state
        self.history = history
        self.task_history = task_history
        self.tool_cache = tool_cache
        self.meter = meter if meter is not None else metrics.NoOpMeter("hivewire.agents")
        self.mcp = McpCalls(mcp if mcp is not None else _NO_SERVERS, remaining=self.remaining)
        self._resource = resource
        self._caller = caller
        self._events = events
        self._tasks = tasks
        self._artifact_id: str | None = None
        self.llm = TurnLLM(
            llm,
            models=models,
            scope=Scope(tenant=tenant, agent=agent, context_id=caller.context_id),
            emit=self.emit_chunk,
        )

    def resource(self, kind: type[R]) -> R:
        """What the agent's lifespan yielded (see :meth:`Agent.lifespan`), checked to be a ``kind``.

        Raises:
            TypeError: the agent declares no lifespan, or it yielded something else.
        """
        if not isinstance(self._resource, kind):
            raise TypeError(
                f"agent {self.agent!r} has no {kind.__name__} resource (declare an @agent.lifespan)"
            )
        return self._resource

    @property
    def context_id(self) -> str:
        """The conversation this request belongs to."""
        return self._caller.context_id

    def remaining(self) -> float | None:
        """Seconds until the caller stops waiting, or ``None`` without a deadline."""
        return self._caller.remaining()

    async def call(
        self,
        agent: str,
        skill: str,
        input: object,
        reply_type: type[R] = Message,  # type: ignore[assignment]
        *,
        timeout: float | None = None,
    ) -> R:
        """Call another agent within this turn's deadline and hop limit (see :meth:`Caller.call`).

        The model spend the callee reports counts toward this request's, so the
        reply to the caller (and the tenant's token budget) covers the whole turn.
        """
        reply = await self._caller.call(agent, skill, input, Message, timeout=timeout)
        self.llm.add(spend_of(reply))
        return read_reply(reply, reply_type)

    def stream(
        self, agent: str, skill: str, input: object, *, timeout: float | None = None
    ) -> ReplyStream[StreamResponse]:
        """Call another agent's streaming skill (see :meth:`Caller.stream`)."""
        return self._caller.stream(agent, skill, input, timeout=timeout)

    async def gather(self, *calls: Call[Any], timeout: float | None = None) -> list[Outcome[Any]]:
        """Call several agents in parallel under one deadline (see :meth:`Caller.gather`)."""
        return await self._caller.gather(*calls, timeout=timeout)

    async def pipeline(
        self,
        steps: list[Call[Any]],
        input: object,
        reply_type: type[R] = Message,  # type: ignore[assignment]
        *,
        timeout: float | None = None,
    ) -> R:
        """Feed ``input`` through ``steps`` in order (see :meth:`Caller.pipeline`)."""
        return await self._caller.pipeline(steps, input, reply_type, timeout=timeout)

    async def submit(self, agent: str, skill: str, input: object) -> Task:
        """Hand work to another agent as a durable task in this conversation."""
        return await self._tasks.submit(self.tenant, agent, skill, input, context_id=self.context_id)

    async def wait(self, task_id: str, *, timeout: float) -> Task:
        """Wait until a task submitted with :meth:`submit` ends; return its record.

        Raises:
            TaskNotFound: no such task.
            RequestTimeout: it is still running after ``timeout`` seconds.
        """
        return await self._tasks.wait(self.tenant, task_id, timeout=timeout)

    async def cancel(self, task_id: str, *, reason: str = "canceled by request") -> Task:
        """Cancel a task submitted with :meth:`submit` (see :meth:`Tasks.cancel`)."""
        return await self._tasks.cancel(self.tenant, task_id, reason=reason)

    async def emit_status(
        self, text: str, state: TaskState = TaskState.WORKING, *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Tell the conversation what this request is doing (a task status update).

        ``metadata`` rides on the status message (an alert's details, say).
        """
        note = Message.agent_text(text, context_id=self.context_id, task_id=self.task_id)
        if metadata:
            note = msgspec.structs.replace(note, metadata=dict(metadata))
        await self._events.publish(
            self.tenant, self.context_id, status_event(self.task_id, self.context_id, state, note)
        )

    async def emit_chunk(self, chunk: object, *, last: bool = False) -> None:
        """Stream one piece of this request's output to the conversation (text or data)."""
        if self._artifact_id is None:
            self._artifact_id = new_id()
        part = Part.text_part(chunk) if isinstance(chunk, str) else Part.data_part(chunk)
        event = chunk_event(self.task_id, self.context_id, self._artifact_id, part, last=last)
        await self._events.publish(self.tenant, self.context_id, event)
