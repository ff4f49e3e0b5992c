"""Conversation events: streamed chunks and task status, published where any client can follow.

Events go to ``hw.<tenant>.ctx.<context>.events``, which the ``HW_EVENTS``
stream keeps, so a client that reconnects (through any gateway replica) can
replay what it missed.
"""

from __future__ import annotations

from bus import subjects
from bus.a2a import (
    Artifact,
    Message,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from bus.client import Bus
from bus.envelope import Envelope

__all__ = ["ConversationEvents", "chunk_event", "status_event"]


def status_event(
    task_id: str, context_id: str | None, state: TaskState, message: Message | None = None
) -> StreamResponse:
    """A task status update as a stream event."""
    return StreamResponse(
        status_update=TaskStatusUpdateEvent(
            task_id=task_id, context_id=context_id, status=TaskStatus.now(state, message)
        )
    )


def chunk_event(
    task_id: str, context_id: str | None, artifact_id: str, part: Part, *, last: bool = False
) -> StreamResponse:
    """One more piece of an artifact being streamed (``append`` after the first)."""
    return StreamResponse(
        artifact_update=TaskArtifactUpdateEvent(
            task_id=task_id,
            context_id=context_id,
            artifact=Artifact(artifact_id=artifact_id, parts=(part,)),
            append=True,
            last_chunk=last,
        )
    )


class ConversationEvents:
    """Publishes events to conversations."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(
        self,
        tenant: str,
        context_id: str,
        event: StreamResponse,
        *,
        message_id: str | None = None,
        stored: bool = False,
    ) -> None:
        """Publish ``event`` to the conversation's event subject.

        ``message_id``: an id the events stream de-duplicates on (within its
        window), for an event that may be published twice; fresh by default.
        ``stored``: wait until the events stream has stored it (see
        :meth:`Bus.publish_stored`): for an event that must survive a NATS
        restart as it is sent, such as the end of a task.
        """
        envelope = (
            Envelope(tenant=tenant) if message_id is None else Envelope(tenant=tenant, message_id=message_id)
        )
        subject = subjects.conversation_events(tenant, context_id)
        if stored:
            await self._bus.publish_stored(subject, event, envelope=envelope)
        else:
            await self._bus.publish(subject, event, envelope=envelope)

    async def task_status(
        self, tenant: str, task: Task, *, message_id: str | None = None, stored: bool = False
    ) -> None:
        """Publish ``task``'s current status (``message_id`` and ``stored`` as for :meth:`publish`)."""
        if task.context_id is not None:
            await self.publish(
                tenant,
                task.context_id,
                StreamResponse(
                    status_update=TaskStatusUpdateEvent(
                        task_id=task.id, context_id=task.context_id, status=task.status
                    )
                ),
                message_id=message_id,
                stored=stored,
            )
