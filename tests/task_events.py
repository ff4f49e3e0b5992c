"""Conversation events in tests: listen to them, count task completions as heard and as stored."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from agents import Mesh
from bus import StreamResponse, TaskState, subjects

__all__ = ["completions", "hearing", "stored_completions"]


@asynccontextmanager
async def hearing(
    mesh: Mesh, subject: str, on_event: Callable[[StreamResponse], None]
) -> AsyncIterator[None]:
    """Hand each conversation event on ``subject`` to ``on_event`` while the block runs.

    Listened to, never served: a task's end is published to JetStream (a request whose reply
    is the stream's acknowledgement), and a subscriber that replied would answer in its place.
    """
    listening = await mesh.bus.listen(
        subject, lambda msg: on_event(mesh.bus.codec.decode(msg.data, StreamResponse))
    )
    try:
        yield
    finally:
        await listening.close()


@asynccontextmanager
async def completions(mesh: Mesh, tenant: str) -> AsyncIterator[collections.Counter[str]]:
    """Count the ``completed`` status events of each task of ``tenant`` while the block runs."""
    counts: collections.Counter[str] = collections.Counter()

    def count(event: StreamResponse) -> None:
        update = event.status_update
        if update is not None and update.status.state is TaskState.COMPLETED:
            counts[update.task_id] += 1

    async with hearing(mesh, subjects.tenant_events(tenant), count):
        yield counts


async def stored_completions(mesh: Mesh, tenant: str) -> collections.Counter[str]:
    """The ``completed`` status events of each task of ``tenant`` in the events stream (what a client
    reading the conversations' events sees, even one that was disconnected when they were sent)."""
    counts: collections.Counter[str] = collections.Counter()
    js = mesh.bus.jetstream()
    sub = await js.subscribe(subjects.tenant_events(tenant), ordered_consumer=True)
    try:
        info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subjects.tenant_events(tenant))
        stored = sum((info.state.subjects or {}).values())
        for _ in range(stored):
            msg = await sub.next_msg(timeout=5)
            event = mesh.bus.codec.decode(msg.data, StreamResponse)
            update = event.status_update
            if update is not None and update.status.state is TaskState.COMPLETED:
                counts[update.task_id] += 1
    finally:
        await sub.unsubscribe()
    return counts
