"""The REST routes of skills: call one (JSON, or streamed as SSE), or submit it as a durable task."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import nats.errors
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from agents.calls import Caller
from agents.card import AgentCard, SkillSchema
from agents.errors import InvalidPageToken
from agents.events import status_event
from agents.listing import TaskQuery
from agents.mesh import Mesh
from agents.payloads import to_message
from bus.a2a import Message, Role, StreamResponse, Task, TaskState, new_id
from bus.errors import NoResponders
from gateway.discovery import live_agent, reachable
from gateway.events import event_name, sse_comment, sse_event, sse_response
from gateway.guard import Admitted, Guard
from gateway.http import MESSAGE_ID_PATTERN, check_message_id, int_param, json_response, read_json
from gateway.problems import Problem
from gateway.replies import Reply, failed_event
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter, spend_of

__all__ = ["SkillInput", "SkillOutput", "SkillRoutes", "TaskPage"]

_encoder = msgspec.json.Encoder()


class SkillInput(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The input of a skill call or task: any JSON value the skill's input schema accepts."""

    input: Any | msgspec.UnsetType = msgspec.UNSET  # left out: an empty text; null is a value
    # A task's id for de-duplication, as the Idempotency-Key header; it travels as Nats-Msg-Id.
    message_id: Annotated[str, Meta(pattern=MESSAGE_ID_PATTERN)] | None = None


class SkillOutput(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A skill's reply: its output value and the full A2A message it came in."""

    output: Any
    message: Message


class TaskPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Tasks, the latest change first; pass ``nextCursor`` back as ``cursor`` for more."""

    items: list[Task]
    next_cursor: str | None = None


class SkillRoutes:
    """Skill calls and durable tasks over the mesh."""

    def __init__(self, settings: GatewaySettings, mesh: Mesh, guard: Guard, usage: UsageMeter) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._usage = usage
        # Each card's skill schemas, read once (a card is replaced, never changed, when an agent restarts).
        self._schemas: dict[int, tuple[AgentCard, dict[str, SkillSchema]]] = {}

    async def invoke(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True)
        agent_name, skill = request.path_params["agent"], request.path_params["skill"]
        body = await read_json(request, SkillInput, self._settings.gateway_max_body)
        caller = self._mesh.caller(admitted.tenant, timeout=self._settings.gateway_timeout)
        message = _input_message(body, caller.context_id)
        if await self._streams(admitted.tenant, agent_name, skill):
            return await self._invoke_streaming(request, admitted, caller, agent_name, skill, message)
        try:
            reply: Message = await caller.call(agent_name, skill, message)
        except Exception as exc:
            await self._explain_missing(exc, agent_name, skill, admitted.tenant)
            raise
        await self._usage.record(admitted.tenant, spend=spend_of(reply))
        return json_response(SkillOutput(output=_output(reply), message=reply), headers=admitted.headers)

    async def _invoke_streaming(
        self,
        request: Request,
        admitted: Admitted,
        caller: Caller,
        agent_name: str,
        skill: str,
        message: Message,
    ) -> Response:
        """A streaming skill: its chunks gathered into one output, or relayed as SSE.

        The first event is awaited before answering, so a skill that fails at
        once (or an agent nobody serves) is an HTTP error like any call's.
        """
        task_id = new_id()
        message = msgspec.structs.replace(message, task_id=task_id)
        context_id = caller.context_id
        exits = contextlib.AsyncExitStack()
        try:
            events = await exits.enter_async_context(caller.stream(agent_name, skill, message))
            first = await anext(events, None)
        except Exception as exc:
            await exits.aclose()
            await self._explain_missing(exc, agent_name, skill, admitted.tenant)
            raise
        reply = Reply(context_id=context_id, task_id=task_id)
        if "text/event-stream" not in request.headers.get("accept", ""):
            async with exits:
                if first is not None:
                    reply.add(first)
                    async for event in events:
                        reply.add(event)
            gathered = reply.message()
            await self._usage.record(admitted.tenant, spend=spend_of(gathered))
            return json_response(
                SkillOutput(output=_output(gathered), message=gathered), headers=admitted.headers
            )

        async def relay() -> AsyncIterator[bytes]:
            async with exits:
                yield sse_comment("hivewire")
                try:
                    if first is not None:
                        yield _sse(reply.add(first))
                        async for event in events:
                            yield _sse(reply.add(event))
                except Exception as exc:  # noqa: BLE001 - the stream ends with the failure, as a turn's does
                    yield _sse(failed_event(exc, task_id, context_id))
                    return
                gathered = reply.message()
                await self._usage.record(admitted.tenant, spend=spend_of(gathered))
                yield _sse(status_event(task_id, context_id, TaskState.COMPLETED, gathered))

        return sse_response(relay(), {**admitted.headers, "Hivewire-Task-Id": task_id})

    async def submit(self, request: Request) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True)
        agent_name, skill = request.path_params["agent"], request.path_params["skill"]
        body = await read_json(request, SkillInput, self._settings.gateway_max_body)
        # The body's message id wins over the header's; both must be ids.
        key = request.headers.get("idempotency-key")
        if key is not None:
            check_message_id(key, "Idempotency-Key")
        message_id = body.message_id or key
        if body.message_id is not None:
            check_message_id(body.message_id)
        await live_agent(self._mesh, agent_name, skill, tenant=admitted.tenant)
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
        wait = _wait(request.query_params.get("wait"), self._settings.gateway_timeout)
        task: Task
        if wait is not None:
            await self._mesh.tasks.get(admitted.tenant, task_id)
            try:
                task = await self._mesh.tasks.wait(admitted.tenant, task_id, timeout=wait)
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
        query = TaskQuery(
            context_id=request.query_params.get("contextId") or None,
            state=state,
            agent=request.query_params.get("agent") or None,
        )
        try:
            page = await self._mesh.tasks.list(
                admitted.tenant, query, page_size=limit, page_token=request.query_params.get("cursor") or ""
            )
        except InvalidPageToken:
            raise Problem(400, "bad-cursor", "Invalid cursor", "pass back the nextCursor of a page") from None
        next_cursor = page.next_page_token or None
        return json_response(
            TaskPage(items=list(page.tasks), next_cursor=next_cursor), headers=admitted.headers
        )

    async def _streams(self, tenant: str, agent_name: str, skill: str) -> bool:
        """True when the live agent's ``skill`` streams (unknown agents and skills do not, nor those
        of an agent ``tenant`` may not reach).

        A registry that cannot be read (the bus is down) says nothing: the call
        goes ahead and reports what it meets.
        """
        try:
            agent = await reachable(self._mesh, agent_name, tenant=tenant)
        except (nats.errors.Error, TimeoutError):
            return False
        if agent is None:
            return False
        known = self._schemas.get(id(agent.card))
        if known is None or known[0] is not agent.card:
            if len(self._schemas) > 1024:
                self._schemas.clear()
            known = self._schemas[id(agent.card)] = (agent.card, agent.card.skill_schemas())
        schema = known[1].get(skill)
        return schema is not None and schema.streaming

    async def _explain_missing(self, exc: Exception, agent_name: str, skill: str, tenant: str) -> None:
        """Turn "nobody answered" into 404 when the agent (or its skill) does not exist for ``tenant``."""
        if isinstance(exc, NoResponders):
            await live_agent(self._mesh, agent_name, skill, tenant=tenant)


def _wait(raw: str | None, limit: float) -> float | None:
    """The seconds of ``?wait=`` (at most ``limit``), or ``None`` without one."""
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        shown = raw if len(raw) <= 24 else raw[:24] + "..."
        raise Problem(400, "bad-wait", "Invalid wait", f"{shown!r} is not a number of seconds")
    return min(seconds, limit)


def _input_value(body: SkillInput) -> object:
    """What the client asked the skill to take (no input: an empty text)."""
    return "" if isinstance(body.input, msgspec.UnsetType) else body.input


def _input_message(body: SkillInput, context_id: str | None, *, message_id: str | None = None) -> Message:
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


def _sse(event: StreamResponse) -> bytes:
    return sse_event(_encoder.encode(event), name=event_name(event))
