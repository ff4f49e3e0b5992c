"""The bus: A2A messages over NATS, typed, traced and shared by every Hivewire process.

Names are imported on first use (PEP 562), so a program that needs one module
of the bus (the command line, a message type) does not load the NATS client.
"""

from typing import TYPE_CHECKING

from bus import subjects
from bus.lazy import lazy_exports

if TYPE_CHECKING:
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
        NotConnected,
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

_EXPORTS = {
    "Artifact": "bus.a2a",
    "Message": "bus.a2a",
    "Part": "bus.a2a",
    "Role": "bus.a2a",
    "StreamResponse": "bus.a2a",
    "Task": "bus.a2a",
    "TaskArtifactUpdateEvent": "bus.a2a",
    "TaskState": "bus.a2a",
    "TaskStatus": "bus.a2a",
    "TaskStatusUpdateEvent": "bus.a2a",
    "new_id": "bus.a2a",
    "Bus": "bus.client",
    "Codec": "bus.codec",
    "EmbeddedNats": "bus.embedded",
    "Envelope": "bus.envelope",
    "Header": "bus.envelope",
    "AuthError": "bus.errors",
    "BusClosed": "bus.errors",
    "BusError": "bus.errors",
    "ConnectError": "bus.errors",
    "Disconnected": "bus.errors",
    "EmbeddedServerError": "bus.errors",
    "ErrorCode": "bus.errors",
    "InvalidSubjectToken": "bus.errors",
    "MalformedPayload": "bus.errors",
    "NoResponders": "bus.errors",
    "NotConnected": "bus.errors",
    "PayloadTooLarge": "bus.errors",
    "RemoteError": "bus.errors",
    "RequestError": "bus.errors",
    "RequestTimeout": "bus.errors",
    "StreamBroken": "bus.errors",
    "Request": "bus.service",
    "Service": "bus.service",
    "ServiceStats": "bus.service",
    "NatsSettings": "bus.settings",
    "TelemetrySettings": "bus.settings",
    "ReplyStream": "bus.stream",
    "Telemetry": "bus.telemetry",
    "TelemetryConfigError": "bus.telemetry",
    "start_telemetry": "bus.telemetry",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


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
    "NotConnected",
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
