"""The JetStream streams and key-value buckets the mesh needs, created on first use.

Every agent process calls :func:`ensure` at start, so a fresh NATS server needs
no setup step. Creation is idempotent; an existing stream or bucket is used as
it is (an operator who changed its limits keeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from agents.settings import AgentSettings
from bus import subjects

__all__ = ["Infrastructure", "ensure", "ensure_bucket", "entries", "registry_bucket", "release"]


@dataclass(frozen=True, slots=True)
class Infrastructure:
    """Handles on the buckets of the mesh (streams need no handle)."""

    registry: KeyValue
    task_records: KeyValue
    state: KeyValue


async def ensure(js: JetStreamContext, settings: AgentSettings) -> Infrastructure:
    """Create whatever is missing of the mesh's streams and buckets; return the buckets."""
    await asyncio.gather(
        _ensure_stream(
            js,
            api.StreamConfig(
                name=subjects.TASKS_STREAM,
                description="Durable agent tasks, streamed turns, and ended turns for the gateways to record",
                subjects=[
                    subjects.all_tenants_tasks(),
                    subjects.all_tenants_turns(),
                    subjects.all_tenants_ended_turns(),
                ],
                retention=api.RetentionPolicy.WORK_QUEUE,
                storage=api.StorageType.FILE,
                duplicate_window=settings.task_dedup_window,
                max_age=settings.task_retention,
                # Listings read queued tasks by batch direct gets (agents.listing).
                allow_direct=True,
            ),
        ),
        _ensure_stream(
            js,
            api.StreamConfig(
                name=subjects.DEAD_LETTER_STREAM,
                description="Durable tasks that failed too often, with the reason",
                subjects=[subjects.all_tenants_dead_letters()],
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                max_age=settings.task_retention,
            ),
        ),
        _ensure_stream(
            js,
            api.StreamConfig(
                name=subjects.EVENTS_STREAM,
                description="Conversation events (chunks, task status), kept for reconnecting clients",
                subjects=[subjects.all_tenants_events()],
                retention=api.RetentionPolicy.LIMITS,
                storage=api.StorageType.FILE,
                max_age=settings.state_ttl,
                duplicate_window=min(120.0, settings.state_ttl),
                # Every open event stream (an SSE client) is one consumer; the server's
                # default cap of 1,000 per stream would limit the whole mesh to that many.
                max_consumers=EVENT_READERS,
            ),
        ),
    )
    registry, task_records, state = await asyncio.gather(
        registry_bucket(js, settings),
        ensure_bucket(js, subjects.TASK_RECORDS_BUCKET, ttl=settings.task_retention),
        ensure_bucket(js, subjects.STATE_BUCKET, ttl=settings.state_ttl),
    )
    return Infrastructure(registry=registry, task_records=task_records, state=state)


async def registry_bucket(js: JetStreamContext, settings: AgentSettings) -> KeyValue:
    """The registry bucket, created if missing: in memory, so a NATS restart loses it and the
    registry makes it again (see :class:`~agents.registry.Registry`)."""
    return await ensure_bucket(
        js, subjects.REGISTRY_BUCKET, ttl=settings.registry_ttl, storage=api.StorageType.MEMORY
    )


async def _ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
        renamed = set(info.config.subjects or ()) != set(config.subjects or ())
        if renamed or (config.allow_direct and not info.config.allow_direct):
            # Made by an earlier release: take the new subject names (they cover the old
            # ones, so what it holds is still captured and read) and direct reads.
            await js.update_stream(
                dataclasses.replace(
                    info.config,
                    subjects=config.subjects,
                    allow_direct=info.config.allow_direct or config.allow_direct,
                )
            )
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Another process created it between our look and our create.
            await js.stream_info(config.name)


async def ensure_bucket(
    js: JetStreamContext, bucket: str, *, ttl: float | None, storage: api.StorageType = api.StorageType.FILE
) -> KeyValue:
    """The bucket named ``bucket``, created if missing (keys expire after ``ttl``; never if ``None``)."""
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        # Direct gets are answered by any replica without the JetStream API's JSON
        # round trip: the benchmark measured reads at about half the cost.
        return await js.create_key_value(bucket=bucket, ttl=ttl, history=1, storage=storage, direct=True)
    except nats.js.errors.BadRequestError:
        return await js.key_value(bucket)


async def entries(kv: KeyValue, pattern: str = ">", *, values: bool = True) -> list[KeyValue.Entry]:
    """The live entries of ``kv`` whose keys match ``pattern`` (NATS wildcards), skipping deletes.

    The server filters by subject, so this reads only the matching keys. It
    reads until the entry the server sent last (``delta`` 0), not until
    nats-py's "nothing more" marker: nats-py (2.16) sends that marker early
    when the server has sent every entry before nats-py counted one, and a
    listing that stopped there came back empty under load.
    """
    watcher = await kv.watch(pattern, meta_only=not values, inactive_threshold=_ABANDONED_AFTER)
    found: list[KeyValue.Entry] = []
    received = 0
    try:
        while True:
            try:
                entry = await watcher.updates(timeout=_LISTING_STALL)
            except nats.errors.TimeoutError:
                break  # only a message nats-py skips (an unknown marker) could end a listing
            if entry is None:
                sub = watcher._sub
                assert sub is not None
                if received == 0 and (await sub.consumer_info()).delivered.consumer_seq == 0:
                    break  # nothing matches
                continue  # the early marker: the entries are on their way
            received += 1
            if entry.operation is None:  # a value, not a delete or purge marker
                found.append(entry)
            if entry.delta == 0:
                break
    finally:
        await watcher.stop()
        await release(watcher._sub)
    return found


# How long a listing waits for its next entry before taking what it has.
_LISTING_STALL = 5.0

# Event streams the mesh may have open at once, across every gateway replica.
EVENT_READERS = 100_000

# The server removes a consumer nobody has listened to for this long (a crashed
# reader's); readers that finish delete theirs at once with release().
_ABANDONED_AFTER = 30.0


async def release(sub: Any) -> None:
    """Unsubscribe ``sub`` and delete its ephemeral consumer now.

    nats-py's unsubscribe leaves the consumer on the server until its inactivity
    threshold passes, and a stream holds a limited number of consumers (1,000 by
    default): a reader per request would exhaust them within minutes.
    """
    with contextlib.suppress(nats.errors.Error):
        await sub.unsubscribe()
    # A JetStream subscription knows its context, stream and (current) consumer name.
    js, stream, consumer = (getattr(sub, name, None) for name in ("_js", "_stream", "_consumer"))
    if js is not None and stream and consumer:
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await js.delete_consumer(stream, consumer)
