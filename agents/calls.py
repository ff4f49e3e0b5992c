"""Calling agents: one request, a stream, a fan-out with one deadline, and a pipeline.

A :class:`Caller` carries what every outgoing call inherits from the turn it
belongs to: the tenant, the conversation, the deadline (a callee never gets
more time than its caller has left) and the hop count (a turn cannot go deeper
than the hop limit, so loops between agents stop with a clear error).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from agents.errors import HopLimitExceeded
from agents.payloads import from_message, to_message
from bus import subjects
from bus.a2a import Message, Role, StreamResponse, new_id
from bus.client import Bus
from bus.envelope import Envelope
from bus.errors import MalformedPayload, RequestTimeout
from bus.stream import ReplyStream

__all__ = ["Call", "Caller", "Failed", "Ok", "Outcome", "read_reply"]

R = TypeVar("R")

# A fan-out waits this much past its deadline for the calls' own timeouts to land.
_GRACE = 0.05


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One call in a fan-out or a pipeline: which skill of which agent, with what input."""

    agent: str
    skill: str
    input: object = None
    reply_type: type[R] = Message  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Ok(Generic[R]):
    """A call that returned in time."""

    call: Call[R]
    value: R
    ok: Literal[True] = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class Failed:
    """A call that failed or missed the deadline; ``error`` is the typed bus or agent error."""

    call: Call[Any]
    error: Exception
    ok: Literal[False] = field(default=False, init=False)


Outcome = Ok[R] | Failed


class Caller:
    """Makes calls to agents on behalf of one tenant and conversation."""

    def __init__(
        self,
        bus: Bus,
        *,
        tenant: str,
        context_id: str | None = None,
        deadline: float | None = None,
        hops: int = 0,
        max_hops: int = 8,
        task_id: str | None = None,
    ) -> None:
        """Args:
        bus: the connection.
        tenant: on whose behalf the calls are made.
        context_id: the conversation the calls belong to (a new one if ``None``).
        task_id: the task the calls work for (a skill's calls: its own), so what the agents
            called stream to the conversation belongs to that task, as a client following it
            expects; ``None``: each callee names its own.
        deadline: ``time.monotonic()`` after which no call may still run.
        hops: the hop count the calls carry (0 from outside the mesh).
        max_hops: the hop limit.
        """
        self.bus = bus
        self.tenant = subjects.token("tenant", tenant)
        self.context_id = context_id or new_id()
        self.deadline = deadline
        self.hops = hops
        self.max_hops = max_hops
        self.task_id = task_id

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    async def call(
        self,
        agent: str,
        skill: str,
        input: object,
        reply_type: type[R] = Message,  # type: ignore[assignment]
        *,
        timeout: float | None = None,
    ) -> R:
        """Call ``agent``'s ``skill`` with ``input`` and return its reply as ``reply_type``.

        Raises:
            HopLimitExceeded: this call would go deeper than the hop limit.
            RequestTimeout: no reply before the deadline.
            NoResponders: no replica of ``agent`` serves ``skill``.
            RemoteError: the agent failed (its code and message).
            MalformedPayload: the reply does not carry a ``reply_type``.
        """
        subject = subjects.agent_request(self.tenant, agent, skill)
        envelope = self._envelope(f"{agent}.{skill}")
        message = to_message(input, role=Role.USER, context_id=self.context_id, task_id=self.task_id)
        reply = await self.bus.request(
            subject, message, Message, envelope=envelope, timeout=self._wait(timeout)
        )
        return read_reply(reply, reply_type)

    def stream(
        self, agent: str, skill: str, input: object, *, timeout: float | None = None
    ) -> ReplyStream[StreamResponse]:
        """Call a streaming skill; use as ``async with caller.stream(...) as events``.

        Raises (when entered or iterated): as :meth:`call`, plus
        :class:`~bus.errors.StreamBroken` if events were lost.
        """
        subject = subjects.agent_request(self.tenant, agent, skill)
        envelope = self._envelope(f"{agent}.{skill}")
        message = to_message(input, role=Role.USER, context_id=self.context_id, task_id=self.task_id)
        return self.bus.stream(
            subject, message, StreamResponse, envelope=envelope, timeout=self._wait(timeout)
        )

    async def gather(self, *calls: Call[Any], timeout: float | None = None) -> list[Outcome[Any]]:
        """Make ``calls`` in parallel under one deadline; never waits past it.

        Returns one outcome per call, in order: :class:`Ok` with the value for
        those that answered in time, :class:`Failed` with the typed error
        (:class:`~bus.errors.RequestTimeout` for those that did not answer).
        """
        wait = self._budget(timeout)
        tasks = [
            asyncio.create_task(self.call(c.agent, c.skill, c.input, c.reply_type, timeout=wait))
            for c in calls
        ]
        if tasks:
            await asyncio.wait(tasks, timeout=wait + _GRACE)
        outcomes: list[Outcome[Any]] = []
        for c, task in zip(calls, tasks, strict=True):
            if not task.done():
                task.cancel()
                subject = subjects.agent_request(self.tenant, c.agent, c.skill)
                outcomes.append(Failed(c, RequestTimeout(subject, wait)))
            elif (error := task.exception()) is not None:
                if not isinstance(error, Exception):  # pragma: no cover - KeyboardInterrupt and the like
                    raise error
                outcomes.append(Failed(c, error))
            else:
                outcomes.append(Ok(c, task.result()))
        return outcomes

    async def pipeline(
        self,
        steps: Sequence[Call[Any]],
        input: object,
        reply_type: type[R] = Message,  # type: ignore[assignment]
        *,
        timeout: float | None = None,
    ) -> R:
        """Call ``steps`` in order, each with the previous one's reply; return the last reply.

        ``input`` feeds the first step (each step's own ``input`` is ignored). All
        steps share one deadline.

        Raises:
            ValueError: ``steps`` is empty.
            RequestError: the first step that failed, as :meth:`call` raises it.
        """
        if not steps:
            raise ValueError("a pipeline needs at least one step")
        wait = self._budget(timeout)
        deadline = time.monotonic() + wait
        value: object = input
        for step in steps:
            reply = await self.call(
                step.agent, step.skill, value, Message, timeout=deadline - time.monotonic()
            )
            # The reply becomes the next agent's request: same content, a new user message.
            value = Message(
                message_id=new_id(), role=Role.USER, parts=reply.parts, context_id=self.context_id
            )
        assert isinstance(value, Message)
        return from_message(value, reply_type)

    def _budget(self, timeout: float | None) -> float:
        wait = self.bus.settings.nats_request_timeout if timeout is None else timeout
        remaining = self.remaining()
        return wait if remaining is None else max(0.0, min(wait, remaining))

    def _wait(self, timeout: float | None) -> float | None:
        """How long one call waits: its own timeout, else until the caller's deadline (else the bus's
        default). Without this, a caller given 60 s would still give up after the default 10."""
        return timeout if timeout is not None else self.remaining()

    def _envelope(self, target: str) -> Envelope:
        if self.hops > self.max_hops:
            raise HopLimitExceeded(self.hops, self.max_hops, target=target)
        return Envelope(tenant=self.tenant, deadline=self.deadline, hops=self.hops)


def read_reply(reply: Message, reply_type: type[R]) -> R:
    """The value of ``reply_type`` an agent's reply carries.

    Raises:
        MalformedPayload: the reply does not carry a ``reply_type``.
    """
    try:
        return from_message(reply, reply_type)
    except ValueError as exc:
        raise MalformedPayload(expected=getattr(reply_type, "__name__", "reply"), reason=str(exc)) from None
