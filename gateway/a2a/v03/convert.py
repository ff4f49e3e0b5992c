"""Conversions between A2A v0.3's wire structs and the v1.0 model the operations work with.

Requests go v0.3 to v1.0 (and through v1.0's checks), results and events
v1.0 to v0.3. A data part's value that is not an object, which v0.3 cannot
carry, travels as ``{"value": ...}`` with ``metadata.data_part_compat: true``,
as the a2a-sdk does both ways.
"""

from __future__ import annotations

from typing import Any

from msgspec import UnsetType

from bus.a2a import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from gateway.a2a.errors import invalid
from gateway.a2a.models import AuthenticationInfo, PushConfig, SendConfiguration, SendParams
from gateway.a2a.v03 import models as v03

__all__ = [
    "from_push_config",
    "history_length",
    "to_push_config",
    "to_send_params",
    "v03_event",
    "v03_message",
    "v03_task",
]

_DATA_COMPAT = "data_part_compat"
_STATES: dict[TaskState, v03.State] = {
    TaskState.SUBMITTED: "submitted",
    TaskState.WORKING: "working",
    TaskState.INPUT_REQUIRED: "input-required",
    TaskState.AUTH_REQUIRED: "auth-required",
    TaskState.COMPLETED: "completed",
    TaskState.FAILED: "failed",
    TaskState.CANCELED: "canceled",
    TaskState.REJECTED: "rejected",
}

V03Event = v03.Task | v03.Message | v03.TaskStatusUpdateEvent | v03.TaskArtifactUpdateEvent


# v0.3 to v1.0: what clients send.


def to_send_params(params: v03.MessageSendParams) -> SendParams:
    """``message/send``'s params as SendMessage's (not yet checked: see ``finish_params``).

    Raises:
        A2AError: invalid params, naming the field.
    """
    message = params.message
    if message.role != "user":
        raise invalid("message.role", f"a client sends 'user' messages, not {message.role!r}")
    parts = tuple(_part(part, f"message.parts[{i}]") for i, part in enumerate(message.parts))
    config = params.configuration
    configuration = None
    if config is not None:
        push = config.push_notification_config
        configuration = SendConfiguration(
            accepted_output_modes=config.accepted_output_modes,
            task_push_notification_config=None
            if push is None
            else to_push_config("", push, "configuration.pushNotificationConfig"),
            history_length=history_length(config.history_length),
            return_immediately=config.blocking is False,
        )
    return SendParams(
        message=Message(
            message_id=message.message_id,
            role=Role.USER,
            parts=parts,
            context_id=message.context_id or None,
            task_id=message.task_id or None,
            metadata=message.metadata,
            extensions=message.extensions,
            reference_task_ids=message.reference_task_ids,
        ),
        configuration=configuration,
        metadata=params.metadata,
    )


def history_length(value: int | None) -> int | None:
    """v0.3's ``historyLength``: 0, like none, is the whole history (as v0.3's SDK read it)."""
    return None if value == 0 else value


def to_push_config(task_id: str, config: v03.PushNotificationConfig, field: str) -> PushConfig:
    """A v0.3 push config as v1.0's; one without an id gets the task's id (v0.3: the task's default).

    Raises:
        A2AError: invalid params (authentication without a scheme).
    """
    authentication = None
    if config.authentication is not None:
        if not config.authentication.schemes:
            raise invalid(f"{field}.authentication.schemes", "at least one scheme is required")
        authentication = AuthenticationInfo(
            scheme=config.authentication.schemes[0], credentials=config.authentication.credentials
        )
    return PushConfig(
        id=config.id or task_id,
        task_id=task_id,
        url=config.url,
        token=config.token,
        authentication=authentication,
    )


def _part(part: v03.Part, field: str) -> Part:
    match part:
        case v03.TextPart():
            return Part(text=part.text, metadata=part.metadata)
        case v03.FilePart(file=file):
            if (file.content is None) == (file.uri is None):
                raise invalid(f"{field}.file", "needs exactly one of bytes or uri")
            if file.uri is not None:
                return Part(
                    url=file.uri, filename=file.name, media_type=file.mime_type, metadata=part.metadata
                )
            assert file.content is not None
            return Part(
                raw=file.content, filename=file.name, media_type=file.mime_type, metadata=part.metadata
            )
        case v03.DataPart():
            metadata = dict(part.metadata or {})
            if not metadata.pop(_DATA_COMPAT, False):
                return Part(data=part.data, metadata=part.metadata)
            if "value" not in part.data:
                raise invalid(f"{field}.data", f"a part with metadata.{_DATA_COMPAT} carries a 'value'")
            return Part(data=part.data["value"], metadata=metadata or None)
    raise AssertionError(part)  # pragma: no cover - the union has three members


# v1.0 to v0.3: what clients get.


def v03_task(task: Task) -> v03.Task:
    """A task as v0.3 writes it."""
    return v03.Task(
        id=task.id,
        context_id=task.context_id or "",
        status=_status(task.status),
        artifacts=tuple(_artifact(artifact) for artifact in task.artifacts),
        history=tuple(v03_message(message) for message in task.history),
        metadata=task.metadata,
    )


def v03_message(message: Message) -> v03.Message:
    """A message as v0.3 writes it."""
    return v03.Message(
        message_id=message.message_id,
        role="user" if message.role is Role.USER else "agent",
        parts=tuple(_v03_part(part) for part in message.parts),
        context_id=message.context_id,
        task_id=message.task_id,
        metadata=message.metadata,
        extensions=message.extensions,
        reference_task_ids=message.reference_task_ids,
    )


def v03_event(event: StreamResponse) -> V03Event:
    """A stream event as v0.3 writes it: the status that ends the stream is ``final``.

    A stream ends where the task ends or waits for the client (v0.3 ended its
    streams there too), so ``final`` is set on those states.
    """
    if not isinstance(event.task, UnsetType):
        return v03_task(event.task)
    if not isinstance(event.message, UnsetType):
        return v03_message(event.message)
    if not isinstance(event.status_update, UnsetType):
        return _status_update(event.status_update)
    assert not isinstance(event.artifact_update, UnsetType)
    return _artifact_update(event.artifact_update)


def from_push_config(config: PushConfig) -> v03.TaskPushNotificationConfig:
    """A stored push config as v0.3 writes it."""
    authentication = None
    if config.authentication is not None:
        authentication = v03.PushAuthentication(
            schemes=(config.authentication.scheme,), credentials=config.authentication.credentials
        )
    return v03.TaskPushNotificationConfig(
        task_id=config.task_id,
        push_notification_config=v03.PushNotificationConfig(
            url=config.url, id=config.id, token=config.token, authentication=authentication
        ),
    )


def _status(status: TaskStatus) -> v03.TaskStatus:
    return v03.TaskStatus(
        state=_STATES.get(status.state, "unknown"),
        message=None if status.message is None else v03_message(status.message),
        timestamp=status.timestamp,
    )


def _status_update(update: TaskStatusUpdateEvent) -> v03.TaskStatusUpdateEvent:
    state = update.status.state
    return v03.TaskStatusUpdateEvent(
        task_id=update.task_id,
        context_id=update.context_id or "",
        status=_status(update.status),
        final=state.terminal or state.interrupted,
        metadata=update.metadata,
    )


def _artifact_update(update: TaskArtifactUpdateEvent) -> v03.TaskArtifactUpdateEvent:
    return v03.TaskArtifactUpdateEvent(
        task_id=update.task_id,
        context_id=update.context_id or "",
        artifact=_artifact(update.artifact),
        append=update.append,
        last_chunk=update.last_chunk,
        metadata=update.metadata,
    )


def _artifact(artifact: Artifact) -> v03.Artifact:
    return v03.Artifact(
        artifact_id=artifact.artifact_id,
        parts=tuple(_v03_part(part) for part in artifact.parts),
        name=artifact.name,
        description=artifact.description,
        metadata=artifact.metadata,
        extensions=artifact.extensions,
    )


def _v03_part(part: Part) -> v03.Part:
    if isinstance(part.text, str):
        return v03.TextPart(text=part.text, metadata=part.metadata)
    if not isinstance(part.data, UnsetType):
        if isinstance(part.data, dict):
            return v03.DataPart(data=part.data, metadata=part.metadata)
        metadata: dict[str, Any] = {**(part.metadata or {}), _DATA_COMPAT: True}
        return v03.DataPart(data={"value": part.data}, metadata=metadata)
    raw = None if isinstance(part.raw, UnsetType) else part.raw
    url = None if isinstance(part.url, UnsetType) else part.url
    file = v03.FileContent(content=raw, uri=url, mime_type=part.media_type, name=part.filename)
    return v03.FilePart(file=file, metadata=part.metadata)
