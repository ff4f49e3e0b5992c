"""A client's handle on the mesh: call agents, run durable tasks, see who is live.

The gateway, the command line and tests use this; agents get the same powers
through their :class:`~agents.context.Context`.
"""

from __future__ import annotations

import time
from typing import TypeVar

from nats.js.kv import KeyValue

from agents.calls import Caller
from agents.deadletter import DeadLetters
from agents.events import ConversationEvents
from agents.infrastructure import ensure, registry_bucket
from agents.registry import Registry
from agents.settings import AgentSettings
from agents.state import ConversationState, Versioned, every_conversation
from agents.tasks import TaskRecords, Tasks
from agents.turns import Turns
from bus.client import Bus

T = TypeVar("T")

__all__ = ["Mesh"]


class Mesh:
    """Everything a client of the mesh needs, over one bus connection."""

    def __init__(
        self,
        bus: Bus,
        settings: AgentSettings,
        *,
        registry: Registry,
        tasks: Tasks,
        turns: Turns,
        dead_letters: DeadLetters,
        events: ConversationEvents,
        state_bucket: KeyValue,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.registry = registry
        self.tasks = tasks
        self.turns = turns
        self.dead_letters = dead_letters
        self.events = events
        self._state_bucket = state_bucket

    @classmethod
    async def open(cls, bus: Bus, settings: AgentSettings, *, registry_cache: float = 0.0) -> Mesh:
        """Bind to the mesh's streams and buckets over ``bus`` (creating what is missing).

        ``registry_cache``: seconds a read of the live agents is reused (see :class:`Registry`).
        """
        infra = await ensure(bus.jetstream(), settings)
        events = ConversationEvents(bus)
        records = TaskRecords(infra.task_records, bus.codec)
        return cls(
            bus,
            settings,
            registry=Registry(
                infra.registry,
                bus.codec,
                ttl=settings.registry_ttl,
                cache_ttl=registry_cache,
                recreate=lambda: registry_bucket(bus.jetstream(), settings),
            ),
            tasks=Tasks(bus, records, events, list_scan=settings.task_list_scan),
            turns=Turns(bus),
            dead_letters=DeadLetters(bus.jetstream(), bus.codec),
            events=events,
            state_bucket=infra.state,
        )

    def caller(self, tenant: str, *, context_id: str | None = None, timeout: float | None = None) -> Caller:
        """Make calls for ``tenant`` in one conversation (a new one if ``context_id`` is ``None``).

        ``timeout`` bounds everything done through the returned caller.
        """
        return Caller(
            self.bus,
            tenant=tenant,
            context_id=context_id,
            deadline=None if timeout is None else time.monotonic() + timeout,
            max_hops=self.settings.max_hops,
        )

    def state(self, tenant: str, context_id: str) -> ConversationState:
        """The shared state of one conversation."""
        return ConversationState(self._state_bucket, self.bus.codec, tenant=tenant, context_id=context_id)

    async def state_everywhere(self, tenant: str, key: str, value_type: type[T]) -> dict[str, Versioned[T]]:
        """The state entry ``key`` of every conversation of ``tenant`` that has one, by conversation id."""
        return await every_conversation(self._state_bucket, self.bus.codec, tenant, key, value_type)
