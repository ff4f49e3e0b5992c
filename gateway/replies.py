"""What a turn or a streamed skill call ends with: the reply its chunks add up to, or its failure."""

from __future__ import annotations

import msgspec

from agents.events import status_event
from agents.turns import ERROR_KEY, TRACE_KEY
from bus.a2a import Message, Part, Role, StreamResponse, TaskState, new_id
from bus.errors import RemoteError
from gateway.problems import problem_from
from gateway.tracing import current_trace_id

__all__ = ["TRACE_KEY", "Reply", "failed_event", "with_problem"]


class Reply:
    """The reply a streaming skill's events add up to: their parts, the text ones joined into one."""

    def __init__(self, *, context_id: str | None, task_id: str | None) -> None:
        self._context_id = context_id
        self._task_id = task_id
        self._parts: list[Part] = []

    def add(self, event: StreamResponse) -> StreamResponse:
        """Take in ``event`` (a chunk or a message; status events add nothing) and return it."""
        if not isinstance(event.artifact_update, msgspec.UnsetType):
            self._parts.extend(event.artifact_update.artifact.parts)
        elif not isinstance(event.message, msgspec.UnsetType):
            self._parts.extend(event.message.parts)
        return event

    def message(self) -> Message:
        """The reply so far, as one agent message."""
        text = "".join(p.text for p in self._parts if isinstance(p.text, str))
        return Message(
            message_id=new_id(),
            role=Role.AGENT,
            parts=(Part.text_part(text),) if text else tuple(self._parts),
            context_id=self._context_id,
            task_id=self._task_id,
        )


def failed_event(exc: Exception, task_id: str, context_id: str | None) -> StreamResponse:
    """The terminal status of a turn that failed with ``exc`` (the problem in the message's metadata)."""
    note = Message(
        message_id=new_id(),
        role=Role.AGENT,
        parts=(),
        context_id=context_id,
        task_id=task_id,
        metadata=_traced({"problem": problem_from(exc).body()}),
    )
    return status_event(task_id, context_id, TaskState.FAILED, note)


def _traced(metadata: dict[str, object]) -> dict[str, object]:
    trace_id = current_trace_id()
    return metadata if trace_id is None else {**metadata, TRACE_KEY: trace_id}


def with_problem(event: StreamResponse) -> StreamResponse:
    """``event``, and if it is a turn's failure with an error code (an agent's, which speaks no HTTP),
    the problem document that code stands for added to its message's metadata (``problem``)."""
    update = event.status_update
    if isinstance(update, msgspec.UnsetType) or update.status.state is not TaskState.FAILED:
        return event
    note = update.status.message
    metadata = (note.metadata or {}) if note is not None else {}
    error = metadata.get(ERROR_KEY)
    if note is None or "problem" in metadata or not isinstance(error, dict):
        return event
    failure = RemoteError(str(error.get("code", "internal")), str(error.get("message", "")))
    note = msgspec.structs.replace(note, metadata={**metadata, "problem": problem_from(failure).body()})
    status = msgspec.structs.replace(update.status, message=note)
    return msgspec.structs.replace(event, status_update=msgspec.structs.replace(update, status=status))
