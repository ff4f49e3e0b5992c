"""A2A v0.3's JSON-RPC wire format as msgspec structs: the method params, the results, the stream events.

Objects a v0.3 union carries say which they are in ``kind`` (``"task"``,
``"message"``, ``"status-update"``, ``"artifact-update"``; parts ``"text"``,
``"file"``, ``"data"``): written on every object sent, required on parts read
(they are a union), optional on a message read (it is the only thing a
message param can be). Unknown fields are ignored, as v1.0's readers do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "Artifact",
    "DataPart",
    "FileContent",
    "FilePart",
    "GetPushParams",
    "Message",
    "MessageSendConfiguration",
    "MessageSendParams",
    "Part",
    "PushAuthentication",
    "PushConfigRefParams",
    "PushNotificationConfig",
    "State",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskIdParams",
    "TaskPushNotificationConfig",
    "TaskQueryParams",
    "TaskStatus",
    "TaskStatusUpdateEvent",
]

State = Literal[
    "submitted",
    "working",
    "input-required",
    "completed",
    "canceled",
    "failed",
    "rejected",
    "auth-required",
    "unknown",
]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Shared configuration of every v0.3 struct."""


class TextPart(_Wire, frozen=True, tag_field="kind", tag="text"):
    """Text."""

    text: str
    metadata: dict[str, Any] | None = None


class FileContent(_Wire, frozen=True):
    """A file: inline (``bytes``, base64 on the wire) or by reference (``uri``); exactly one of them."""

    content: bytes | None = msgspec.field(default=None, name="bytes")
    uri: str | None = None
    mime_type: str | None = None
    name: str | None = None


class FilePart(_Wire, frozen=True, tag_field="kind", tag="file"):
    """A file."""

    file: FileContent
    metadata: dict[str, Any] | None = None


class DataPart(_Wire, frozen=True, tag_field="kind", tag="data"):
    """Structured data: always an object in v0.3 (see :mod:`gateway.a2a.v03.convert` for other values)."""

    data: dict[str, Any]
    metadata: dict[str, Any] | None = None


Part = TextPart | FilePart | DataPart


class Message(_Wire, frozen=True, tag_field="kind", tag="message"):
    """One turn of a conversation; roles are ``"user"`` and ``"agent"``."""

    message_id: str
    role: Literal["user", "agent"]
    parts: tuple[Part, ...]
    context_id: str | None = None
    task_id: str | None = None
    metadata: dict[str, Any] | None = None
    extensions: tuple[str, ...] = ()
    reference_task_ids: tuple[str, ...] = ()


class TaskStatus(_Wire, frozen=True):
    """A task's state, with the message that explains it."""

    state: State
    message: Message | None = None
    timestamp: datetime | None = None


class Artifact(_Wire, frozen=True):
    """An output of a task."""

    artifact_id: str
    parts: tuple[Part, ...]
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    extensions: tuple[str, ...] = ()


class Task(_Wire, frozen=True, tag_field="kind", tag="task"):
    """A task; ``contextId`` is required in v0.3."""

    id: str
    context_id: str
    status: TaskStatus
    artifacts: tuple[Artifact, ...] = ()
    history: tuple[Message, ...] = ()
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(_Wire, frozen=True, tag_field="kind", tag="status-update"):
    """A streamed status; ``final`` (always written) marks the last event of the stream."""

    task_id: str
    context_id: str
    status: TaskStatus
    final: bool
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(_Wire, frozen=True, tag_field="kind", tag="artifact-update"):
    """A streamed artifact, or a chunk of one."""

    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


class PushAuthentication(_Wire, frozen=True):
    """How a webhook call authenticates (v0.3 lists schemes; the first one is used)."""

    schemes: tuple[str, ...]
    credentials: str | None = None


class PushNotificationConfig(_Wire, frozen=True):
    """Where to POST a task's events."""

    url: str
    id: str | None = None
    token: str | None = None
    authentication: PushAuthentication | None = None


class TaskPushNotificationConfig(_Wire, frozen=True):
    """``tasks/pushNotificationConfig/set``'s params, and every push method's result."""

    task_id: str
    push_notification_config: PushNotificationConfig


class MessageSendConfiguration(_Wire, frozen=True):
    """How a message is sent (``blocking`` left out: blocking)."""

    accepted_output_modes: tuple[str, ...] = ()
    blocking: bool | None = None
    history_length: int | None = None
    push_notification_config: PushNotificationConfig | None = None


class MessageSendParams(_Wire, frozen=True):
    """``message/send`` and ``message/stream``."""

    message: Message
    configuration: MessageSendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskQueryParams(_Wire, frozen=True):
    """``tasks/get``."""

    id: str
    history_length: int | None = None
    metadata: dict[str, Any] | None = None


class TaskIdParams(_Wire, frozen=True):
    """``tasks/cancel``, ``tasks/resubscribe`` and ``tasks/pushNotificationConfig/list``."""

    id: str
    metadata: dict[str, Any] | None = None


class GetPushParams(_Wire, frozen=True):
    """``tasks/pushNotificationConfig/get``: ``id`` is the task's; no config id names the task's default."""

    id: str
    push_notification_config_id: str | None = None
    metadata: dict[str, Any] | None = None


class PushConfigRefParams(_Wire, frozen=True):
    """``tasks/pushNotificationConfig/delete``."""

    id: str
    push_notification_config_id: str
    metadata: dict[str, Any] | None = None
