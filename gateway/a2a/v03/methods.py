"""A2A v0.3's JSON-RPC methods, served by the v1.0 operations: params converted in, results out.

The JSON-RPC binding sends a request here when its method is a v0.3 name
(``message/send``, ``tasks/get``...); nothing is done twice, every method
converts and calls :class:`~gateway.a2a.operations.Operations`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request

from gateway.a2a.cards import Cards, base_url
from gateway.a2a.errors import A2AError, ErrorKind
from gateway.a2a.models import (
    CancelParams,
    ListPushParams,
    PushConfig,
    PushConfigRef,
    SendParams,
    SubscribeParams,
    TaskParams,
    decode_params,
    finish_params,
)
from gateway.a2a.operations import Event, Operations
from gateway.a2a.v03 import models as v03
from gateway.a2a.v03.convert import (
    from_push_config,
    history_length,
    to_push_config,
    to_send_params,
    v03_task,
)
from gateway.guard import Admitted
from gateway.settings import GatewaySettings

__all__ = ["METHODS", "SPENDS_TOKENS", "STREAMING", "V03Methods", "v03_error"]

METHODS = frozenset(
    {
        "message/send",
        "message/stream",
        "tasks/get",
        "tasks/cancel",
        "tasks/resubscribe",
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
        "agent/getAuthenticatedExtendedCard",
    }
)
STREAMING = frozenset({"message/stream", "tasks/resubscribe"})
SPENDS_TOKENS = frozenset({"message/send", "message/stream"})
# The error codes v0.3 defines; v1.0's later ones (-32008, -32009) reach v0.3 clients as internal errors.
_V03_CODES = frozenset({-32700, -32600, -32601, -32602, -32603, *range(-32007, -32000)})


class V03Methods:
    """The v0.3 methods of one gateway's A2A endpoint."""

    def __init__(self, settings: GatewaySettings, operations: Operations, cards: Cards) -> None:
        self._settings = settings
        self._ops = operations
        self._cards = cards

    async def call(
        self, request: Request, admitted: Admitted, agent: str, method: str, params: msgspec.Raw
    ) -> Any:
        """The result of a method that answers once, as v0.3 writes it.

        Raises:
            A2AError: the method's error (:func:`v03_error` renders it for v0.3).
        """
        ops, tenant = self._ops, admitted.tenant
        match method:
            case "message/send":
                sent = await ops.send(tenant, agent, _send_params(params))
                return v03_task(sent["task"])
            case "tasks/get":
                query = decode_params(params, v03.TaskQueryParams)
                task_params = TaskParams(id=query.id, history_length=history_length(query.history_length))
                return v03_task(await ops.get(tenant, finish_params(task_params)))
            case "tasks/cancel":
                ids = decode_params(params, v03.TaskIdParams)
                return v03_task(await ops.cancel(tenant, CancelParams(id=ids.id, metadata=ids.metadata)))
            case "tasks/pushNotificationConfig/set":
                wanted = decode_params(params, v03.TaskPushNotificationConfig)
                config = to_push_config(
                    wanted.task_id, wanted.push_notification_config, "pushNotificationConfig"
                )
                return from_push_config(await ops.create_push(tenant, config))
            case "tasks/pushNotificationConfig/get":
                return from_push_config(
                    await self._get_push(tenant, decode_params(params, v03.GetPushParams))
                )
            case "tasks/pushNotificationConfig/list":
                ids = decode_params(params, v03.TaskIdParams)
                listed = await ops.list_push(tenant, ListPushParams(task_id=ids.id))
                return [from_push_config(config) for config in listed.configs]
            case "tasks/pushNotificationConfig/delete":
                ref = decode_params(params, v03.PushConfigRefParams)
                await ops.delete_push(
                    tenant, PushConfigRef(task_id=ref.id, id=ref.push_notification_config_id)
                )
                return None
            case "agent/getAuthenticatedExtendedCard":
                base = base_url(request, self._settings)
                return await self._cards.extended(tenant, agent, base, request.url.path)
        raise A2AError(ErrorKind.METHOD_NOT_FOUND, f"no method {method!r}", method=method)

    async def stream(
        self, admitted: Admitted, agent: str, method: str, params: msgspec.Raw, *, after: int | None
    ) -> AsyncIterator[Event]:
        """The events of ``message/stream`` or ``tasks/resubscribe`` (v1.0's: see :func:`v03_event`).

        ``after``: the event a resuming client saw last (``Last-Event-ID``), as for SubscribeToTask.
        """
        if method == "message/stream":
            return await self._ops.stream(admitted.tenant, agent, _send_params(params))
        ids = decode_params(params, v03.TaskIdParams)
        return await self._ops.subscribe(admitted.tenant, SubscribeParams(id=ids.id), after=after)

    async def _get_push(self, tenant: str, params: v03.GetPushParams) -> PushConfig:
        if params.push_notification_config_id:
            return await self._ops.get_push(
                tenant, PushConfigRef(task_id=params.id, id=params.push_notification_config_id)
            )
        # No config named: the task's default one (set without an id: its id is the task's), else its first.
        configs = (await self._ops.list_push(tenant, ListPushParams(task_id=params.id))).configs
        for config in sorted(configs, key=lambda config: config.id != params.id):
            return config
        raise A2AError(ErrorKind.TASK_NOT_FOUND, f"task {params.id} has no push config", taskId=params.id)


def v03_error(error: A2AError) -> dict[str, Any]:
    """The JSON-RPC error object for a v0.3 client: v1.0's own codes become internal errors."""
    rendered = error.jsonrpc()
    if error.kind.code not in _V03_CODES:
        rendered["code"] = ErrorKind.INTERNAL.code
    return rendered


def _send_params(params: msgspec.Raw) -> SendParams:
    return finish_params(to_send_params(decode_params(params, v03.MessageSendParams)))
