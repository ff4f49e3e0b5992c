"""A2A errors: one type per error the protocol names, with its code in each binding.

Operations raise :class:`A2AError`; each binding renders it its own way (a
JSON-RPC error object, or an HTTP status with a ``google.rpc.Status`` body),
from the one table here (A2A v1.0, section 5.4). Errors of the mesh that a
request can meet are translated in :func:`a2a_error_from`, so no binding maps
them on its own.
"""

from __future__ import annotations

import enum
from typing import Any

from agents.errors import InvalidPageToken, TaskNotFound, TaskNotResumable
from bus.errors import InvalidSubjectToken
from gateway.problems import RETRY_AFTER, Problem, problem_from

__all__ = ["A2AError", "ErrorKind", "a2a_error_from"]

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
DOMAIN = "a2a-protocol.org"


class ErrorKind(enum.Enum):
    """An A2A error type: (JSON-RPC code, HTTP status, gRPC status, standard message)."""

    PARSE_ERROR = (-32700, 400, "INVALID_ARGUMENT", "Invalid JSON payload")
    INVALID_REQUEST = (-32600, 400, "INVALID_ARGUMENT", "Request payload validation error")
    METHOD_NOT_FOUND = (-32601, 404, "NOT_FOUND", "Method not found")
    INVALID_PARAMS = (-32602, 400, "INVALID_ARGUMENT", "Invalid parameters")
    INTERNAL = (-32603, 500, "INTERNAL", "Internal error")
    TASK_NOT_FOUND = (-32001, 404, "NOT_FOUND", "Task not found")
    TASK_NOT_CANCELABLE = (-32002, 400, "FAILED_PRECONDITION", "Task cannot be canceled")
    PUSH_NOTIFICATION_NOT_SUPPORTED = (
        -32003,
        400,
        "FAILED_PRECONDITION",
        "Push notifications are not supported",
    )
    UNSUPPORTED_OPERATION = (-32004, 400, "FAILED_PRECONDITION", "This operation is not supported")
    CONTENT_TYPE_NOT_SUPPORTED = (-32005, 400, "INVALID_ARGUMENT", "Incompatible content types")
    INVALID_AGENT_RESPONSE = (-32006, 500, "INTERNAL", "Invalid agent response")
    EXTENDED_AGENT_CARD_NOT_CONFIGURED = (
        -32007,
        400,
        "FAILED_PRECONDITION",
        "Extended agent card not configured",
    )
    EXTENSION_SUPPORT_REQUIRED = (-32008, 400, "FAILED_PRECONDITION", "Extension support required")
    VERSION_NOT_SUPPORTED = (-32009, 400, "FAILED_PRECONDITION", "Version not supported")
    # Not one of A2A's own: the mesh is unreachable for now (NATS away or recovering). JSON-RPC
    # clients see an internal error whose ErrorInfo says UNAVAILABLE (with retryAfter); the
    # HTTP+JSON binding answers 503 with a Retry-After header, as gRPC's UNAVAILABLE maps.
    UNAVAILABLE = (-32603, 503, "UNAVAILABLE", "The service is unavailable; try again shortly")
    # Not one of A2A's own either: no agent of that name is running, for the caller's tenant. JSON-RPC
    # clients see invalid params (the agent is the request's), whose ErrorInfo says AGENT_NOT_FOUND;
    # the HTTP+JSON binding answers 404, as for any URL of nothing.
    AGENT_NOT_FOUND = (-32602, 404, "NOT_FOUND", "Agent not found")

    @property
    def code(self) -> int:
        """The JSON-RPC error code."""
        return int(self.value[0])

    @property
    def http_status(self) -> int:
        """The HTTP status of the HTTP+JSON binding."""
        return int(self.value[1])

    @property
    def grpc_status(self) -> str:
        """The gRPC status name (also the ``status`` of an HTTP error body)."""
        return str(self.value[2])

    @property
    def reason(self) -> str:
        """The ``ErrorInfo`` reason: the error's name in UPPER_SNAKE_CASE."""
        return "INTERNAL_ERROR" if self is ErrorKind.INTERNAL else self.name


class A2AError(Exception):
    """An A2A error to send back: its kind, a message for people, and context for programs.

    ``metadata`` becomes the ``ErrorInfo`` metadata (strings, per google.rpc);
    ``field`` names the offending parameter of an invalid-params error.
    """

    def __init__(
        self, kind: ErrorKind, message: str = "", *, field: str | None = None, **metadata: str
    ) -> None:
        self.kind = kind
        self.message = message or kind.value[3]
        self.field = field
        self.metadata = metadata
        super().__init__(self.message)

    def details(self) -> list[dict[str, Any]]:
        """The error details (``@type``-tagged objects) every binding carries."""
        details: list[dict[str, Any]] = [
            {"@type": ERROR_INFO, "reason": self.kind.reason, "domain": DOMAIN, "metadata": self.metadata}
        ]
        if self.field is not None:
            violation = {"field": self.field, "description": self.message}
            details.append({"@type": BAD_REQUEST, "fieldViolations": [violation]})
        return details

    def jsonrpc(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        return {"code": self.kind.code, "message": self.message, "data": self.details()}

    def status(self) -> dict[str, Any]:
        """The ``google.rpc.Status`` body of the HTTP+JSON binding."""
        return {
            "error": {
                "code": self.kind.http_status,
                "status": self.kind.grpc_status,
                "message": self.message,
                "details": self.details(),
            }
        }


def invalid(field: str, message: str) -> A2AError:
    """An invalid-params error about one parameter."""
    return A2AError(ErrorKind.INVALID_PARAMS, f"{field}: {message}", field=field)


def a2a_error_from(exc: Exception) -> A2AError:
    """The A2A error an exception met while serving an A2A request stands for.

    Problems of the gateway's own (a missing agent, an oversized body) keep
    their status in the metadata; anything unexpected is an internal error
    whose detail is in the gateway's log, never in the reply.
    """
    match exc:
        case A2AError():
            return exc
        case TaskNotFound():
            return A2AError(ErrorKind.TASK_NOT_FOUND, str(exc), taskId=exc.task_id)
        case TaskNotResumable():
            return A2AError(ErrorKind.UNSUPPORTED_OPERATION, str(exc), taskId=exc.task_id, state=exc.state)
        case InvalidPageToken():
            return A2AError(ErrorKind.INVALID_PARAMS, str(exc), field="pageToken")
        case InvalidSubjectToken() if exc.kind == "task id":
            # No task can have such an id: as unknown as any other.
            return A2AError(ErrorKind.TASK_NOT_FOUND, f"no task {exc.value!r}", taskId=exc.value)
        case InvalidSubjectToken():
            return A2AError(ErrorKind.INVALID_PARAMS, str(exc), field=exc.kind)
    problem = problem_from(exc) if not isinstance(exc, Problem) else exc
    if problem.status == 404 and problem.kind == "agent-not-found":
        return A2AError(ErrorKind.AGENT_NOT_FOUND, problem.detail or problem.title)
    if problem.status == 404 and problem.kind == "skill-not-found":
        return A2AError(ErrorKind.INVALID_PARAMS, problem.detail or problem.title)
    if problem.status < 500:
        return A2AError(ErrorKind.INVALID_PARAMS, problem.detail or problem.title, problem=problem.kind)
    if problem.status == 503:
        extra = {key: str(value) for key, value in problem.extra.items() if isinstance(value, str | int)}
        return A2AError(
            ErrorKind.UNAVAILABLE,
            problem.detail or problem.title,
            problem=problem.kind,
            retryAfter=str(RETRY_AFTER),
            **extra,
        )
    return A2AError(ErrorKind.INTERNAL, problem.title, problem=problem.kind, status=str(problem.status))
