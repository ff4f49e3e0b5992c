"""The A2A protocol endpoint: standard A2A clients talk to the mesh over JSON-RPC.

``/.well-known/agent-card.json`` describes the gateway's default agent and
``/a2a`` serves it; ``/a2a/agents/<agent>`` (with its card below it) serves any
live mesh agent. Messages become durable tasks of the agent, so ``GetTask``
and ``CancelTask`` work from any gateway replica, and a streamed message
relays the task's events from the conversation's event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agents.card import AgentInterface
from agents.errors import TaskNotFound
from agents.mesh import Mesh
from agents.registry import LiveAgent
from bus.a2a import Message, StreamResponse, Task, new_id
from gateway.discovery import live_agent
from gateway.events import ConversationFeed, sse_comment, sse_event
from gateway.guard import Guard
from gateway.http import check_message_id, decode_json, json_response, read_body
from gateway.limits import UsageMeter, spend_in
from gateway.problems import Problem, problem_from
from gateway.settings import GatewaySettings

__all__ = ["A2AEndpoint"]

PROTOCOL_VERSION = "1.0"

# JSON-RPC error codes (the protocol's own are -32001 and below).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
UNSUPPORTED_OPERATION = -32004

_encoder = msgspec.json.Encoder()


class _Params(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    tenant: str | None = None
    metadata: dict[str, Any] | None = None


class SendConfiguration(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    accepted_output_modes: tuple[str, ...] = ()
    history_length: int | None = None
    return_immediately: bool = False


class SendParams(_Params, frozen=True, kw_only=True):
    message: Message
    configuration: SendConfiguration | None = None


class TaskParams(_Params, frozen=True, kw_only=True):
    id: str
    history_length: int | None = None


class RpcRequest(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str
    method: str
    id: str | int | None = None
    params: msgspec.Raw = msgspec.Raw(b"{}")


class RpcError(Exception):
    """A JSON-RPC error to send back."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class A2AEndpoint:
    """The A2A routes, over the mesh."""

    def __init__(
        self, settings: GatewaySettings, mesh: Mesh, guard: Guard, feed: ConversationFeed, usage: UsageMeter
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._feed = feed
        self._usage = usage

    def routes(self) -> list[Route]:
        """The card and JSON-RPC routes."""
        return [
            Route("/a2a", self.default_rpc, methods=["POST"]),
            Route("/a2a/agents/{agent}", self.agent_rpc, methods=["POST"]),
            Route("/.well-known/agent-card.json", self.default_card, methods=["GET"]),
            Route("/a2a/agents/{agent}/.well-known/agent-card.json", self.agent_card, methods=["GET"]),
        ]

    async def default_card(self, request: Request) -> Response:
        return await self._card(request, self._settings.gateway_agent, "/a2a")

    async def agent_card(self, request: Request) -> Response:
        agent = request.path_params["agent"]
        return await self._card(request, agent, f"/a2a/agents/{agent}")

    async def default_rpc(self, request: Request) -> Response:
        return await self._rpc(request, self._settings.gateway_agent)

    async def agent_rpc(self, request: Request) -> Response:
        return await self._rpc(request, request.path_params["agent"])

    async def _card(self, request: Request, agent_name: str, path: str) -> Response:
        agent = await live_agent(self._mesh.registry, agent_name)
        base = (self._settings.gateway_public_url or str(request.base_url)).rstrip("/")
        card = msgspec.structs.replace(
            agent.card,
            supported_interfaces=(
                AgentInterface(
                    url=base + path, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION
                ),
            ),
            capabilities=msgspec.structs.replace(agent.card.capabilities, streaming=True),
            security_schemes={
                "apiKey": {
                    "httpAuthSecurityScheme": {"scheme": "Bearer", "description": "A Hivewire API key"}
                }
            },
            security_requirements=({"schemes": {"apiKey": {"list": []}}},),
        )
        return json_response(card, headers={"Cache-Control": "max-age=30"})

    async def _rpc(self, request: Request, agent_name: str) -> Response:
        admitted = await self._guard.admit(request, spends_tokens=True)
        body = await read_body(request, self._settings.gateway_max_body)
        try:
            rpc = decode_json(body, RpcRequest)
        except msgspec.ValidationError as exc:
            return _error(None, RpcError(INVALID_REQUEST, "Invalid request", str(exc)))
        except msgspec.DecodeError as exc:
            return _error(None, RpcError(PARSE_ERROR, "Parse error", str(exc)))
        if rpc.jsonrpc != "2.0":
            return _error(rpc.id, RpcError(INVALID_REQUEST, "Invalid request", "jsonrpc must be '2.0'"))
        tenant = admitted.tenant
        try:
            match rpc.method:
                case "SendMessage":
                    result: Any = await self._send(tenant, agent_name, _params(rpc, SendParams))
                case "SendStreamingMessage":
                    events = await self._stream(tenant, agent_name, _params(rpc, SendParams))
                    return StreamingResponse(
                        _jsonrpc_sse(rpc.id, events),
                        media_type="text/event-stream",
                        headers={**admitted.headers, "Cache-Control": "no-cache"},
                    )
                case "GetTask":
                    params = _params(rpc, TaskParams)
                    result = _trim(await self._mesh.tasks.get(tenant, params.id), params.history_length)
                case "CancelTask":
                    result = await self._cancel(tenant, _params(rpc, TaskParams).id)
                case "ListTasks" | "SubscribeToTask" | "GetExtendedAgentCard":
                    raise RpcError(UNSUPPORTED_OPERATION, f"{rpc.method} is not supported by this gateway")
                case _ if "PushNotificationConfig" in rpc.method:
                    raise RpcError(-32003, "Push notifications are not supported")
                case _:
                    raise RpcError(METHOD_NOT_FOUND, "Method not found", rpc.method)
        except RpcError as exc:
            return _error(rpc.id, exc)
        except TaskNotFound as exc:
            return _error(rpc.id, RpcError(TASK_NOT_FOUND, "Task not found", str(exc)))
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the client as JSON-RPC
            problem = problem_from(exc)
            return _error(rpc.id, RpcError(INTERNAL_ERROR, problem.title, problem.body()))
        return json_response({"jsonrpc": "2.0", "id": rpc.id, "result": result}, headers=admitted.headers)

    async def _send(self, tenant: str, agent_name: str, params: SendParams) -> dict[str, Task]:
        agent, skill, message = await self._route(agent_name, params)
        task = await self._mesh.tasks.submit(tenant, agent.name, skill, message)
        config = params.configuration or SendConfiguration()
        if not config.return_immediately and not task.status.state.terminal:
            try:
                task = await self._mesh.tasks.wait(tenant, task.id, timeout=self._settings.gateway_timeout)
            except TimeoutError:
                task = await self._mesh.tasks.get(tenant, task.id)
            await self._count(tenant, task)
        return {"task": _trim(task, config.history_length)}

    async def _stream(
        self, tenant: str, agent_name: str, params: SendParams
    ) -> AsyncIterator[StreamResponse]:
        agent, skill, message = await self._route(agent_name, params)
        assert message.context_id is not None
        feed = contextlib.AsyncExitStack()
        events = await feed.enter_async_context(self._feed.open(tenant, message.context_id))
        try:
            task = await self._mesh.tasks.submit(tenant, agent.name, skill, message)
        except BaseException:
            await feed.aclose()
            raise

        async def relay() -> AsyncIterator[StreamResponse]:
            try:
                yield StreamResponse(task=task)
                if task.status.state.terminal:
                    return
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self._settings.gateway_timeout
                while (remaining := deadline - loop.time()) > 0:
                    found = await events.next(min(remaining, self._settings.gateway_sse_ping))
                    if found is None:
                        continue
                    event = found.event
                    if _task_of(event) != task.id:
                        continue
                    yield event
                    if event.terminal:
                        await self._count(tenant, await self._mesh.tasks.get(tenant, task.id))
                        return
            finally:
                await feed.aclose()

        return relay()

    async def _cancel(self, tenant: str, task_id: str) -> Task:
        task = await self._mesh.tasks.get(tenant, task_id)
        if task.status.state.terminal:
            raise RpcError(TASK_NOT_CANCELABLE, "Task cannot be canceled", f"it is {task.status.state.name}")
        return await self._mesh.tasks.cancel(tenant, task_id)

    async def _route(self, agent_name: str, params: SendParams) -> tuple[LiveAgent, str, Message]:
        agent = await live_agent(self._mesh.registry, agent_name)
        metadata = {**(params.metadata or {}), **(params.message.metadata or {})}
        wanted = metadata.get("skill")
        skills = [skill.id for skill in agent.card.skills]
        if isinstance(wanted, str):
            if wanted not in skills:
                raise RpcError(
                    INVALID_PARAMS, "Unknown skill", f"agent {agent.name!r} has no skill {wanted!r}"
                )
            skill = wanted
        elif self._settings.gateway_skill in skills:
            skill = self._settings.gateway_skill
        elif skills:
            skill = skills[0]
        else:
            raise RpcError(INVALID_PARAMS, "The agent has no skills", agent.name)
        message = params.message
        try:
            check_message_id(message.message_id)
        except Problem as exc:
            raise RpcError(INVALID_PARAMS, exc.title, exc.detail) from None
        if message.context_id is None:
            message = msgspec.structs.replace(message, context_id=new_id())
        return agent, skill, message

    async def _count(self, tenant: str, task: Task) -> None:
        await self._usage.record(tenant, spend=spend_in((task.metadata or {}).get("usage")))


def _params(rpc: RpcRequest, params_type: type[Any]) -> Any:
    try:
        return decode_json(bytes(rpc.params), params_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RpcError(INVALID_PARAMS, "Invalid params", str(exc)) from None


def _trim(task: Task, history_length: int | None) -> Task:
    if history_length is None:
        return task
    history = task.history[-history_length:] if history_length > 0 else ()
    return msgspec.structs.replace(task, history=history)


def _task_of(event: StreamResponse) -> str | None:
    for member in (event.status_update, event.artifact_update, event.task, event.message):
        if not isinstance(member, msgspec.UnsetType):
            return member.task_id if not isinstance(member, Task) else member.id
    return None


def _error(request_id: str | int | None, error: RpcError) -> Response:
    return json_response({"jsonrpc": "2.0", "id": request_id, "error": error.body()})


async def _jsonrpc_sse(
    request_id: str | int | None, events: AsyncIterator[StreamResponse]
) -> AsyncIterator[bytes]:
    yield sse_comment("hivewire")
    try:
        async for event in events:
            yield sse_event(_encoder.encode({"jsonrpc": "2.0", "id": request_id, "result": event}))
    except Exception as exc:  # noqa: BLE001 - the stream reports the failure as a JSON-RPC error
        problem = problem_from(exc)
        error = RpcError(INTERNAL_ERROR, problem.title, problem.body())
        yield sse_event(_encoder.encode({"jsonrpc": "2.0", "id": request_id, "error": error.body()}))
