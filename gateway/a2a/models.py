"""The A2A operations' requests and responses (v1.0 JSON names), and the checks every binding shares.

Unknown fields are ignored, as the protocol asks of readers; the ``tenant``
field is accepted and ignored (the API key decides the tenant, and the card
declares no tenant for clients to send).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

from bus.a2a import Message, Role, Task, TaskState
from gateway.a2a.errors import A2AError, ErrorKind, invalid
from gateway.http import check_message_id, decode_json
from gateway.problems import Problem

__all__ = [
    "AuthenticationInfo",
    "CancelParams",
    "ListParams",
    "ListPushParams",
    "ListPushResponse",
    "PushConfig",
    "PushConfigRef",
    "SendConfiguration",
    "SendParams",
    "SubscribeParams",
    "TaskParams",
    "check_params",
    "decode_params",
    "finish_params",
    "shape",
]

P = TypeVar("P")

MAX_PAGE_SIZE = 100


class _Params(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    tenant: str | None = None


class AuthenticationInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """How a webhook call authenticates: ``Authorization: <scheme> <credentials>``."""

    scheme: str
    credentials: str | None = None


class PushConfig(_Params, frozen=True, kw_only=True):
    """A2A's TaskPushNotificationConfig: where to POST a task's events, and how."""

    id: str = ""
    task_id: str = ""
    url: str
    token: str | None = None
    authentication: AuthenticationInfo | None = None


class SendConfiguration(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """How a message is sent: what to wait for, what to return, where to push updates."""

    accepted_output_modes: tuple[str, ...] = ()
    task_push_notification_config: PushConfig | None = None
    history_length: int | None = None
    return_immediately: bool = False


class SendParams(_Params, frozen=True, kw_only=True):
    """SendMessage and SendStreamingMessage."""

    message: Message
    configuration: SendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskParams(_Params, frozen=True, kw_only=True):
    """GetTask."""

    id: str
    history_length: int | None = None


class CancelParams(_Params, frozen=True, kw_only=True):
    """CancelTask."""

    id: str
    metadata: dict[str, Any] | None = None


class SubscribeParams(_Params, frozen=True, kw_only=True):
    """SubscribeToTask."""

    id: str


class ListParams(_Params, frozen=True, kw_only=True):
    """ListTasks."""

    context_id: str | None = None
    # The enum's name; TASK_STATE_UNSPECIFIED (protobuf's default) filters nothing.
    status: str | None = None
    page_size: int | None = None
    page_token: str = ""
    history_length: int | None = None
    status_timestamp_after: datetime | None = None
    include_artifacts: bool = False

    def state(self) -> TaskState | None:
        """The state filter, checked."""
        if self.status in (None, "", "TASK_STATE_UNSPECIFIED"):
            return None
        try:
            return TaskState(self.status)
        except ValueError:
            names = ", ".join(state.value for state in TaskState)
            raise invalid("status", f"{self.status!r} is not a task state; use one of {names}") from None

    def checked_page_size(self) -> int:
        """The page size, checked (50 when not given)."""
        if self.page_size is None:
            return 50
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise invalid("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size}")
        return self.page_size


class PushConfigRef(_Params, frozen=True, kw_only=True):
    """GetTaskPushNotificationConfig and DeleteTaskPushNotificationConfig."""

    task_id: str
    id: str


class ListPushParams(_Params, frozen=True, kw_only=True):
    """ListTaskPushNotificationConfigs."""

    task_id: str
    page_size: int | None = None
    page_token: str = ""


class ListPushResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The push configs of a task (all of them: a task has few)."""

    configs: tuple[PushConfig, ...]
    next_page_token: str = ""


def decode_params(data: bytes, params_type: type[P]) -> P:
    """The parameters of an operation, decoded and checked.

    Raises:
        A2AError: invalid params (the reason names the field).
    """
    try:
        params = decode_json(bytes(data), params_type)
    except msgspec.ValidationError as exc:
        raise A2AError(ErrorKind.INVALID_PARAMS, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise A2AError(ErrorKind.INVALID_PARAMS, f"params are not valid JSON: {exc}") from None
    return finish_params(params)


def finish_params(params: P) -> P:
    """``params`` checked (:func:`check_params`), whole numbers in a message's data parts as integers.

    Raises:
        A2AError: invalid params (the reason names the field).
    """
    check_params(params)
    if isinstance(params, SendParams):
        params = msgspec.structs.replace(params, message=_whole_numbers(params.message))
    return params


def _whole_numbers(message: Message) -> Message:
    """``message`` with whole numbers in its data parts as integers.

    Clients built on the protocol's protobuf types (the official SDKs) send
    every number of a data part as a double (``3.0``), since protobuf's
    ``Value`` has no integers; a skill taking an ``int`` would refuse it.
    """
    if all(isinstance(part.data, msgspec.UnsetType) for part in message.parts):
        return message
    parts = tuple(
        part
        if isinstance(part.data, msgspec.UnsetType)
        else msgspec.structs.replace(part, data=_whole(part.data))
        for part in message.parts
    )
    return msgspec.structs.replace(message, parts=parts)


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value


def check_params(params: object) -> None:
    """The checks of the protocol a decoding cannot make (required parts, roles, bounds)."""
    if isinstance(params, SendParams):
        message = params.message
        try:
            check_message_id(message.message_id)  # it travels in a NATS header (Nats-Msg-Id)
        except Problem as exc:
            raise invalid("message.messageId", exc.detail) from None
        if message.role is not Role.USER:
            raise invalid(
                "message.role", f"a client sends {Role.USER.value} messages, not {message.role.value}"
            )
        if not message.parts:
            raise invalid("message.parts", "at least one part is required")
        if params.configuration is not None:
            _history_length("configuration.historyLength", params.configuration.history_length)
    elif isinstance(params, TaskParams | ListParams):
        _history_length("historyLength", params.history_length)


def _history_length(field: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise invalid(field, f"must not be negative, got {value}")


def shape(task: Task, history_length: int | None, *, artifacts: bool = True) -> Task:
    """``task`` with at most ``history_length`` of its latest messages (all when ``None``), and its
    artifacts only when asked for."""
    if history_length is not None:
        history = task.history[-history_length:] if history_length > 0 else ()
        task = msgspec.structs.replace(task, history=history)
    if not artifacts and task.artifacts:
        task = msgspec.structs.replace(task, artifacts=())
    return task
