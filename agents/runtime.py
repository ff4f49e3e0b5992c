"""The agent runtime: gives a declared :class:`~agents.agent.Agent` its place in the mesh.

Starting a runtime creates whatever the mesh is missing (streams, buckets),
subscribes each skill in the agent's queue group (so replicas share requests),
binds the workers of its durable tasks and of its streamed conversation turns,
and announces the agent in the registry.
Stopping it drains: no new work is taken, work in flight gets the grace period
to finish, tasks still running after it are released to other replicas, and
the registry entry is withdrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import msgspec

from agents.agent import Agent, Skill
from agents.calls import Caller
from agents.context import Context
from agents.deadletter import DeadLetters
from agents.errors import AgentDefinitionError, HopLimitExceeded, InvalidInput
from agents.events import ConversationEvents, chunk_event
from agents.infrastructure import Infrastructure, ensure, registry_bucket
from agents.llm.turn import resolve_models
from agents.mcp import McpClients, merge_servers
from agents.metrics import AgentMetrics
from agents.payloads import from_message, to_message
from agents.registry import Heartbeat, Load, Registry
from agents.resources import Resources
from agents.settings import AgentSettings
from agents.state import ConversationState
from agents.tasks import TaskRecords, TaskRequest, Tasks
from agents.turns import TRACE_KEY
from agents.usage import USAGE_KEY
from agents.worker import TaskWorker
from bus import logs, subjects
from bus.a2a import Message, Part, Role, StreamResponse, new_id
from bus.client import Bus
from bus.envelope import Envelope
from bus.errors import ErrorCode, RemoteError
from bus.service import Request, Service

__all__ = ["AgentRuntime"]

log = logging.getLogger(__name__)


class AgentRuntime:
    """One replica of an agent, connected to the mesh through ``bus``."""

    def __init__(
        self,
        agent: Agent,
        bus: Bus,
        settings: AgentSettings,
        *,
        instance: str | None = None,
        resources: Resources | None = None,
    ) -> None:
        """Args:
        resources: the process's shared clients; built from ``settings`` (and
            closed at stop) when not given.

        Raises:
            AgentDefinitionError: the agent declares no skills.
        """
        if not agent.skills:
            raise AgentDefinitionError(agent.name, "the agent declares no skills")
        self.agent = agent
        self.instance = instance or f"{socket.gethostname()[:40]}-{os.getpid()}-{new_id()[:6]}".replace(
            ".", "-"
        )
        self._bus = bus
        self._settings = settings
        self._events = ConversationEvents(bus)
        self._services: list[Service[Message]] = []
        self._infra: Infrastructure | None = None
        self._tasks: Tasks | None = None
        self._worker: TaskWorker | None = None
        self._turns: TaskWorker | None = None
        self._heartbeat: Heartbeat | None = None
        self._unlisten: Callable[[], None] | None = None
        self._metrics: AgentMetrics | None = None
        # For the agent's own instruments (ctx.meter): the process's meter provider, as the bus's.
        self._meter = bus.telemetry.meter_provider.get_meter("hivewire.agents")
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._resource: object = None
        self._owns_resources = resources is None
        self.resources = resources if resources is not None else Resources.from_settings(settings)
        self._models = resolve_models(
            agent.name, agent.models, self.resources.model_overrides, self.resources.default_model
        )
        # The agent's MCP servers: connected on first use, shared by every request of this process.
        self.mcp = McpClients(
            merge_servers(agent.mcp_servers, settings.mcp_servers).values(),
            tracer_provider=self.resources.tracer_provider,
        )

    @property
    def tasks(self) -> Tasks:
        """Submit and follow durable tasks (available once started)."""
        assert self._tasks is not None, "start the runtime first"
        return self._tasks

    async def start(self) -> None:
        """Join the mesh: from here on the agent's skills answer and its tasks run."""
        if self.agent.lifespan_factory is not None:
            # Opened first and closed last: no skill ever runs without its resources.
            self._lifespan = contextlib.asynccontextmanager(self.agent.lifespan_factory)(self._settings)
            self._resource = await self._lifespan.__aenter__()
        infra = self._infra = await ensure(self._bus.jetstream(), self._settings)
        records = TaskRecords(infra.task_records, self._bus.codec)
        self._tasks = Tasks(self._bus, records, self._events)
        queue = subjects.agent_queue_group(self.agent.name)
        for skill in self.agent.skills.values():
            # An agent of some tenants only hears their requests: the others' meet no responder.
            for subject in _skill_subjects(self.agent, skill):
                limit = self._settings.max_concurrency
                if skill.streaming:
                    service = await self._bus.serve_stream(
                        subject, self._streaming(skill), Message, queue=queue, max_concurrency=limit
                    )
                else:
                    service = await self._bus.serve(
                        subject, self._interactive(skill), Message, queue=queue, max_concurrency=limit
                    )
                self._services.append(service)
        dead_letters = DeadLetters(self._bus.jetstream(), self._bus.codec)
        self._worker, self._turns = (
            TaskWorker(
                agent=self.agent.name,
                instance=self.instance,
                bus=self._bus,
                settings=self._settings,
                records=records,
                events=self._events,
                dead_letters=dead_letters,
                invoke=self._run_task,
                turns=turns,
            )
            for turns in (False, True)
        )
        await asyncio.gather(self._worker.start(), self._turns.start())
        if self._bus.telemetry.metering:
            worker = self._worker
            self._metrics = AgentMetrics(
                self.agent.name,
                self._bus,
                self._bus.telemetry.meter_provider,
                dead_lettered=lambda: worker.stats.dead_lettered,
                redis=self.resources.redis,
            )
            self._metrics.start()
        self._heartbeat = Heartbeat(
            Registry(
                infra.registry,
                self._bus.codec,
                ttl=self._settings.registry_ttl,
                recreate=lambda: registry_bucket(self._bus.jetstream(), self._settings),
            ),
            agent=self.agent.name,
            instance=self.instance,
            card=self.agent.card(),
            interval=self._settings.heartbeat_interval,
            load=self.load,
            tenants=self.agent.tenants,
        )
        await self._heartbeat.start()
        # A restarted server lost the registry (it lives in memory): announce again at once.
        self._unlisten = self._bus.on_reconnected(self._heartbeat.wake)
        log.info("agent %s (%s) joined the mesh", self.agent.name, self.instance)

    async def stop(self, *, grace: float | None = None) -> None:
        """Drain: take no new work, give work in flight ``grace`` seconds, release the rest."""
        wait = self._settings.drain_grace if grace is None else grace
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        if self._metrics is not None:
            metrics, self._metrics = self._metrics, None
            await metrics.stop()
        services, self._services = self._services, []
        workers = [worker for worker in (self._worker, self._turns) if worker is not None]
        self._worker = self._turns = None
        await asyncio.gather(
            *(service.stop(grace=wait) for service in services),
            *(worker.stop(grace=wait) for worker in workers),
        )
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            await lifespan.__aexit__(None, None, None)
        await self.mcp.close()
        if self._owns_resources:
            await self.resources.close()
        log.info("agent %s (%s) left the mesh", self.agent.name, self.instance)

    async def __aenter__(self) -> AgentRuntime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def load(self) -> Load:
        """What this replica is doing now (sent with each heartbeat)."""
        in_flight = sum(s.stats.in_flight for s in self._services)
        handled = sum(s.stats.handled for s in self._services)
        failed = sum(s.stats.failed for s in self._services)
        for worker in (self._worker, self._turns):
            if worker is not None:
                in_flight += worker.stats.in_flight
                handled += worker.stats.completed
                failed += worker.stats.failed
        return Load(in_flight=in_flight, handled=handled, failed=failed)

    def _interactive(self, skill: Skill) -> Callable[[Request[Message]], Awaitable[Message]]:
        async def handle(request: Request[Message]) -> Message:
            tenant = subjects.parse_agent_request(request.subject).tenant
            message = request.payload
            ctx = self._context(skill, tenant, message, request.envelope, message.task_id or new_id())
            output = await skill.handler(ctx, self._input(skill, message))
            return _with_usage(
                to_message(output, role=Role.AGENT, context_id=ctx.context_id, task_id=message.task_id), ctx
            )

        return handle

    def _streaming(self, skill: Skill) -> Callable[[Request[Message]], AsyncIterator[StreamResponse]]:
        async def handle(request: Request[Message]) -> AsyncIterator[StreamResponse]:
            tenant = subjects.parse_agent_request(request.subject).tenant
            message = request.payload
            ctx = self._context(skill, tenant, message, request.envelope, message.task_id or new_id())
            artifact_id = new_id()
            async for chunk in skill.handler(ctx, self._input(skill, message)):
                if isinstance(chunk, StreamResponse):
                    yield chunk
                else:
                    yield chunk_event(ctx.task_id, ctx.context_id, artifact_id, _part(chunk))

        return handle

    async def _run_task(self, tenant: str, request: TaskRequest, envelope: Envelope) -> Message:
        remaining = envelope.remaining()
        if remaining is None:
            return await self._run_skill(tenant, request, envelope)
        # A turn's attempt has the time its gateway gave it (a durable task has no deadline).
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                return await self._run_skill(tenant, request, envelope)
        except TimeoutError:
            raise RemoteError(
                ErrorCode.DEADLINE_EXCEEDED, f"the turn did not end within {remaining:.1f}s"
            ) from None

    async def _run_skill(self, tenant: str, request: TaskRequest, envelope: Envelope) -> Message:
        skill = self.agent.skills.get(request.skill)
        if skill is None:
            raise RemoteError(
                ErrorCode.NOT_FOUND, f"agent {self.agent.name!r} has no skill {request.skill!r}"
            )
        if self.agent.tenants and tenant not in self.agent.tenants:
            raise RemoteError(
                ErrorCode.NOT_FOUND, f"agent {self.agent.name!r} does not serve tenant {tenant!r}"
            )
        message = request.message
        ctx = self._context(skill, tenant, message, envelope, request.task_id)
        if request.prior is not None:
            ctx.task_history = request.prior.history
        value = self._input(skill, message)
        if not skill.streaming:
            output = await skill.handler(ctx, value)
            return _traced(
                _with_usage(
                    to_message(output, role=Role.AGENT, context_id=ctx.context_id, task_id=request.task_id),
                    ctx,
                ),
                request,
            )
        # A streaming skill run as a task streams to the conversation; the result
        # is everything it produced.
        parts: list[Part] = []
        async for chunk in skill.handler(ctx, value):
            if isinstance(chunk, StreamResponse):
                # An event the skill made itself goes out as it is; its parts are the result's.
                parts.extend(_parts_of(chunk))
                await self._events.publish(tenant, ctx.context_id, chunk)
                continue
            part = _part(chunk)
            parts.append(part)
            await ctx.emit_chunk(chunk)
        text = "".join(p.text for p in parts if isinstance(p.text, str))
        merged = (
            (Part.text_part(text),) if text and all(isinstance(p.text, str) for p in parts) else tuple(parts)
        )
        return _traced(
            _with_usage(
                Message(
                    message_id=new_id(),
                    role=Role.AGENT,
                    parts=merged,
                    context_id=ctx.context_id,
                    task_id=request.task_id,
                ),
                ctx,
            ),
            request,
        )

    def _context(
        self, skill: Skill, tenant: str, message: Message, envelope: Envelope, task_id: str
    ) -> Context:
        limit = self._settings.max_hops
        if envelope.hops > limit:
            raise HopLimitExceeded(envelope.hops, limit, target=f"{self.agent.name}.{skill.id}")
        assert self._infra is not None
        assert self._tasks is not None
        context_id = message.context_id or new_id()
        logs.bind(tenant=tenant, conversation_id=context_id, task_id=task_id)
        return Context(
            agent=self.agent.name,
            skill=skill.id,
            tenant=tenant,
            message=message,
            envelope=envelope,
            task_id=task_id,
            caller=Caller(
                self._bus,
                tenant=tenant,
                context_id=context_id,
                deadline=envelope.deadline,
                hops=envelope.hops + 1,
                max_hops=limit,
                task_id=task_id,
            ),
            events=self._events,
            state=ConversationState(self._infra.state, self._bus.codec, tenant=tenant, context_id=context_id),
            tasks=self._tasks,
            llm=self.resources.llm,
            models=self._models,
            history=self.resources.history,
            tool_cache=self.resources.tool_cache,
            mcp=self.mcp,
            resource=self._resource,
            meter=self._meter,
        )

    @staticmethod
    def _input(skill: Skill, message: Message) -> Any:
        try:
            return from_message(message, skill.input_type)
        except ValueError as exc:
            raise InvalidInput(skill.id, str(exc)) from None


def _skill_subjects(agent: Agent, skill: Skill) -> list[str]:
    if not agent.tenants:
        return [subjects.agent_skill_all_tenants(agent.name, skill.id)]
    return [subjects.agent_request(tenant, agent.name, skill.id) for tenant in agent.tenants]


def _part(chunk: object) -> Part:
    if isinstance(chunk, str):
        return Part.text_part(chunk)
    if isinstance(chunk, Part):
        return chunk
    return Part.data_part(msgspec.to_builtins(chunk))


def _parts_of(event: StreamResponse) -> tuple[Part, ...]:
    if not isinstance(event.artifact_update, msgspec.UnsetType):
        return event.artifact_update.artifact.parts
    if not isinstance(event.message, msgspec.UnsetType):
        return event.message.parts
    return ()


def _traced(message: Message, request: TaskRequest) -> Message:
    """The reply naming the trace of its turn, which the turn's request carries (if any)."""
    trace = (request.metadata or {}).get(TRACE_KEY)
    if trace is None:
        return message
    return msgspec.structs.replace(message, metadata={**(message.metadata or {}), TRACE_KEY: trace})


def _with_usage(message: Message, ctx: Context) -> Message:
    """The reply with the request's model spend in its metadata (tokens and cost per model)."""
    if not ctx.llm.spend:
        return message
    usage = {model: msgspec.to_builtins(spend) for model, spend in ctx.llm.spend.items()}
    return msgspec.structs.replace(message, metadata={**(message.metadata or {}), USAGE_KEY: usage})
