"""The A2A operations on the mesh, one implementation whichever binding a request came in by.

A message becomes a durable task of the agent (or continues the task it
names), so every operation works from any gateway replica: tasks, their
events and push configs all live on the bus. Streams follow the task's
conversation events in ``HW_EVENTS``, each with its stream sequence, which a
client that reconnects sends back (``Last-Event-ID``) to replay what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from agents.listing import TaskPage, TaskQuery
from agents.mesh import Mesh
from agents.outcome import Outcome
from agents.registry import LiveAgent
from agents.tasks import task_id_for
from bus.a2a import Message, StreamResponse, Task, TaskState, new_id
from gateway.a2a.errors import A2AError, ErrorKind, invalid
from gateway.a2a.models import (
    CancelParams,
    ListParams,
    ListPushParams,
    ListPushResponse,
    PushConfig,
    PushConfigRef,
    SendConfiguration,
    SendParams,
    SubscribeParams,
    TaskParams,
    shape,
)
from gateway.a2a.push import PushConfigs, WebhookPolicy
from gateway.discovery import live_agent
from gateway.events import ConversationFeed, Feed
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter, spend_in

__all__ = ["Event", "Operations"]


@dataclass(frozen=True, slots=True)
class _Start:
    """A message about to start a task (``agent`` and ``skill`` set) or continue one."""

    message: Message  # with its conversation
    task_id: str
    push: PushConfig | None = None
    agent: str | None = None
    skill: str | None = None


# One event of a stream and its position in the event log (``None``: the task snapshot);
# a ``None`` event is a quiet moment, when bindings send a keep-alive.
Event = tuple[int | None, StreamResponse | None]


class Operations:
    """SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask and push configs."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        feed: ConversationFeed,
        usage: UsageMeter,
        push: PushConfigs | None,
        policy: WebhookPolicy,
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._feed = feed
        self._usage = usage
        self._push = push
        self._policy = policy

    async def send(self, tenant: str, agent_name: str, params: SendParams) -> dict[str, Task]:
        """Run the message as a task (or continue the task it names); wait unless told not to."""
        config = params.configuration or SendConfiguration()
        start = await self._plan(tenant, agent_name, params)
        if config.return_immediately:
            task = await self._start(tenant, start)
        else:
            assert start.message.context_id is not None
            context_id = start.message.context_id
            mesh = self._mesh
            async with Outcome(
                mesh.bus, mesh.tasks, tenant, context_id, start.task_id, interrupted=True
            ) as outcome:
                task = await self._start(tenant, start)
                task = await outcome.wait(task, timeout=self._settings.gateway_timeout)
            if task.status.state.terminal:
                await self._count(tenant, task)
        return {"task": shape(task, config.history_length)}

    async def stream(self, tenant: str, agent_name: str, params: SendParams) -> AsyncIterator[Event]:
        """Like :meth:`send`, streaming the task, then its events until it ends or waits for input."""
        config = params.configuration or SendConfiguration()
        start = await self._plan(tenant, agent_name, params)
        assert start.message.context_id is not None
        feed = contextlib.AsyncExitStack()
        # Following the conversation before the task starts: no event can be missed.
        events = await feed.enter_async_context(self._feed.open(tenant, start.message.context_id))
        try:
            task = await self._start(tenant, start)
        except BaseException:
            await feed.aclose()
            raise
        return self._follow(tenant, events, feed, shape(task, config.history_length), stop_at_first=True)

    async def get(self, tenant: str, params: TaskParams) -> Task:
        """The task as it stands."""
        return shape(await self._mesh.tasks.get(tenant, params.id), params.history_length)

    async def list(self, tenant: str, params: ListParams) -> TaskPage:
        """A page of the tenant's tasks, most recently updated first (whichever agent runs them)."""
        query = TaskQuery(
            context_id=params.context_id or None,
            state=params.state(),
            updated_after=params.status_timestamp_after,
        )
        page = await self._mesh.tasks.list(
            tenant, query, page_size=params.checked_page_size(), page_token=params.page_token
        )
        tasks = tuple(
            shape(task, params.history_length, artifacts=params.include_artifacts) for task in page.tasks
        )
        return msgspec.structs.replace(page, tasks=tasks)

    async def cancel(self, tenant: str, params: CancelParams) -> Task:
        """Cancel the task; a running one stops."""
        task = await self._mesh.tasks.get(tenant, params.id)
        if task.status.state.terminal:
            raise A2AError(
                ErrorKind.TASK_NOT_CANCELABLE,
                f"task {task.id} already ended ({task.status.state.value})",
                taskId=task.id,
                state=task.status.state.value,
            )
        return await self._mesh.tasks.cancel(tenant, params.id)

    async def subscribe(
        self, tenant: str, params: SubscribeParams, *, after: int | None = None
    ) -> AsyncIterator[Event]:
        """The task as it stands, then its events until it ends.

        A client resuming after event ``after`` gets the events it missed first,
        to the very end if the task has ended since; a new subscription to an
        ended task is refused (A2A: there is nothing to follow).
        """
        task = await self._mesh.tasks.get(tenant, params.id)
        if after is None:
            _refuse_ended(task)
        assert task.context_id is not None
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(self._feed.open(tenant, task.context_id, after=after))
        try:
            # Read again now that the events are followed: nothing falls between the two.
            task = await self._mesh.tasks.get(tenant, params.id)
            if after is None:
                _refuse_ended(task)
        except BaseException:
            await feed.aclose()
            raise
        return self._follow(tenant, events, feed, task, stop_at_first=False, replay=after is not None)

    async def create_push(self, tenant: str, config: PushConfig) -> PushConfig:
        """Store a webhook for the task's events (an id is made up when the config has none)."""
        push = self._pushes()
        if not config.task_id:
            raise invalid("taskId", "is required")
        await self._mesh.tasks.get(tenant, config.task_id)
        await self._policy.check(config.url)
        return await push.put(tenant, config)

    async def get_push(self, tenant: str, ref: PushConfigRef) -> PushConfig:
        """One of the task's push configs."""
        push = self._pushes()
        await self._mesh.tasks.get(tenant, ref.task_id)
        found = await push.get(tenant, ref.task_id, ref.id)
        if found is None:
            raise A2AError(
                ErrorKind.TASK_NOT_FOUND,
                f"task {ref.task_id} has no push config {ref.id!r}",
                taskId=ref.task_id,
                configId=ref.id,
            )
        return found

    async def list_push(self, tenant: str, params: ListPushParams) -> ListPushResponse:
        """Every push config of the task."""
        push = self._pushes()
        await self._mesh.tasks.get(tenant, params.task_id)
        return ListPushResponse(configs=tuple(await push.list(tenant, params.task_id)))

    async def delete_push(self, tenant: str, ref: PushConfigRef) -> None:
        """Remove a push config (removing one that is gone already is no error)."""
        push = self._pushes()
        await self._mesh.tasks.get(tenant, ref.task_id)
        await push.delete(tenant, ref.task_id, ref.id)

    async def _plan(self, tenant: str, agent_name: str, params: SendParams) -> _Start:
        """What a message starts: a new task of an agent's skill, or the continuation of the task it names."""
        message = params.message
        push = (params.configuration or SendConfiguration()).task_push_notification_config
        if push is not None:
            self._pushes()
            await self._policy.check(push.url)
        if message.task_id:
            task = await self._mesh.tasks.get(tenant, message.task_id)
            if message.context_id and message.context_id != task.context_id:
                raise invalid(
                    "message.contextId", f"task {task.id} belongs to conversation {task.context_id}"
                )
            message = msgspec.structs.replace(message, context_id=task.context_id)
            return _Start(message=message, task_id=task.id, push=push)
        agent, skill = await self._route(tenant, agent_name, params)
        if message.context_id is None:
            message = msgspec.structs.replace(message, context_id=new_id())
        task_id = task_id_for(tenant, agent.name, message.message_id)
        return _Start(message=message, task_id=task_id, push=push, agent=agent.name, skill=skill)

    async def _start(self, tenant: str, start: _Start) -> Task:
        if start.push is not None:
            # Stored first, so the webhook hears of the task from its very first event.
            config = msgspec.structs.replace(start.push, task_id=start.task_id)
            await self._pushes().put(tenant, config)
        if start.agent is None:
            return await self._mesh.tasks.resume(tenant, start.task_id, start.message)
        assert start.skill is not None
        return await self._mesh.tasks.submit(tenant, start.agent, start.skill, start.message)

    async def _route(self, tenant: str, agent_name: str, params: SendParams) -> tuple[LiveAgent, str]:
        """The agent (if ``tenant`` may reach it) and skill a new message goes to: ``metadata.skill``,
        else the default skill."""
        agent = await live_agent(self._mesh, agent_name, tenant=tenant)
        metadata = {**(params.metadata or {}), **(params.message.metadata or {})}
        wanted = metadata.get("skill")
        skills = [skill.id for skill in agent.card.skills]
        if isinstance(wanted, str):
            if wanted not in skills:
                raise invalid("metadata.skill", f"agent {agent.name!r} has no skill {wanted!r}")
            return agent, wanted
        if self._settings.gateway_skill in skills:
            return agent, self._settings.gateway_skill
        if skills:
            return agent, skills[0]
        raise invalid("agent", f"agent {agent.name!r} has no skills")

    async def _follow(
        self,
        tenant: str,
        events: Feed,
        feed: contextlib.AsyncExitStack,
        first: Task,
        *,
        stop_at_first: bool,
        replay: bool = False,
    ) -> AsyncIterator[Event]:
        """``first``, then the events of its task until one ends the stream (see :func:`_settled`).

        ``stop_at_first``: end at once if ``first`` itself is settled. ``replay``:
        the events are read from the past, so an ended task's stream ends when
        they run out (its final status may have expired).
        """
        ended = first.status.state.terminal
        try:
            yield None, StreamResponse(task=first)
            if (ended and not replay) or (stop_at_first and _settled(first)):
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._settings.gateway_stream_timeout
            ping = self._settings.gateway_sse_ping
            while (remaining := deadline - loop.time()) > 0:
                found = await events.next(min(remaining, ping))
                if found is None:
                    if ended:
                        return
                    yield None, None
                    continue
                if found.event.task_id != first.id:
                    continue
                yield found.seq, found.event
                update = found.event.status_update
                if not isinstance(update, msgspec.UnsetType) and _settled_state(update.status.state):
                    if update.status.state.terminal:
                        await self._count(tenant, await self._mesh.tasks.get(tenant, first.id))
                    return
        finally:
            await feed.aclose()

    def _pushes(self) -> PushConfigs:
        if self._push is None:
            raise A2AError(ErrorKind.PUSH_NOTIFICATION_NOT_SUPPORTED, "push notifications are turned off")
        return self._push

    async def _count(self, tenant: str, task: Task) -> None:
        await self._usage.record(tenant, spend=spend_in((task.metadata or {}).get("usage")))


def _settled(task: Task) -> bool:
    return _settled_state(task.status.state)


def _settled_state(state: TaskState) -> bool:
    """Ended, or waiting for the client: where a blocking send returns and a stream closes."""
    return state.terminal or state.interrupted


def _refuse_ended(task: Task) -> None:
    if task.status.state.terminal:
        raise A2AError(
            ErrorKind.UNSUPPORTED_OPERATION,
            f"task {task.id} ended ({task.status.state.value}): there is nothing more to follow",
            taskId=task.id,
            state=task.status.state.value,
        )
