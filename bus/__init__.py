"""The bus: A2A messages over NATS, typed, traced and shared by every Hivewire process."""

from bus import subjects
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
    new_id,
)
from bus.client import Bus
from bus.codec import Codec
from bus.embedded import EmbeddedNats
from bus.envelope import Envelope, Header
from bus.errors import (
    AuthError,
    BusClosed,
    BusError,
    ConnectError,
    Disconnected,
    EmbeddedServerError,
    ErrorCode,
    InvalidSubjectToken,
    MalformedPayload,
    NoResponders,
    PayloadTooLarge,
    RemoteError,
    RequestError,
    RequestTimeout,
    StreamBroken,
)
from bus.service import Request, Service, ServiceStats
from bus.settings import NatsSettings, TelemetrySettings
from bus.stream import ReplyStream
from bus.telemetry import Telemetry, TelemetryConfigError, start_telemetry

__all__ = [
    "Artifact",
    "AuthError",
    "Bus",
    "BusClosed",
    "BusError",
    "Codec",
    "ConnectError",
    "Disconnected",
    "EmbeddedNats",
    "EmbeddedServerError",
    "Envelope",
    "ErrorCode",
    "Header",
    "InvalidSubjectToken",
    "MalformedPayload",
    "Message",
    "NatsSettings",
    "NoResponders",
    "Part",
    "PayloadTooLarge",
    "RemoteError",
    "ReplyStream",
    "Request",
    "RequestError",
    "RequestTimeout",
    "Role",
    "Service",
    "ServiceStats",
    "StreamBroken",
    "StreamResponse",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "Telemetry",
    "TelemetryConfigError",
    "TelemetrySettings",
    "new_id",
    "start_telemetry",
    "subjects",
]
