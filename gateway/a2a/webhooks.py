"""Push delivery: every event of a task with push configs, POSTed to each webhook, by one gateway replica.

Every gateway runs a :class:`PushDelivery`; they share one durable consumer
on ``HW_EVENTS`` (``hw-push``), so each event goes to exactly one replica,
and one that dies mid-delivery leaves its events unacknowledged for another
to deliver (at least once, as A2A asks; receivers de-duplicate). The events of
one task are delivered in order. A webhook that fails (no answer, a status
other than 2xx) is called again after a delay that doubles, up to
``HIVEWIRE_GATEWAY_PUSH_ATTEMPTS`` calls; the event is acknowledged when its
calls are done, so a long retry keeps it from being redelivered meanwhile.

Which tasks have configs is kept in memory, from a watch of the ``hw_push``
bucket (a config is in effect within milliseconds, everywhere); the events of
tenants without any are acknowledged without being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import httpx
import nats.errors
from nats.aio.msg import Msg
from nats.js import api
from nats.js.kv import KeyValue

from bus import subjects
from bus.a2a import StreamResponse
from bus.client import Bus
from bus.consumer import PullRunner, add_shared_consumer
from bus.errors import MalformedPayload
from gateway.a2a.errors import A2AError
from gateway.a2a.models import PushConfig
from gateway.a2a.push import PushConfigs, WebhookPolicy
from gateway.settings import GatewaySettings

__all__ = ["PushDelivery"]

log = logging.getLogger(__name__)

# Events one replica delivers at once; the ack wait after which another replica takes one over.
_IN_HAND = 64
_ACK_WAIT = 30.0


class PushDelivery:
    """This replica's share of the webhook calls."""

    def __init__(
        self, bus: Bus, configs: PushConfigs, policy: WebhookPolicy, settings: GatewaySettings
    ) -> None:
        self._bus = bus
        self._configs = configs
        self._policy = policy
        self._settings = settings
        # (tenant, task id) -> config id -> config; and how many configs each tenant has.
        self._index: dict[tuple[str, str], dict[str, PushConfig]] = {}
        self._tenants: defaultdict[str, int] = defaultdict(int)
        # Per task with events being delivered: its lock, and how many events wait on it.
        self._order: dict[str, _InOrder] = {}
        self._watch: asyncio.Task[None] | None = None
        self._runner: PullRunner | None = None
        self._http = httpx.AsyncClient(timeout=settings.gateway_push_timeout, follow_redirects=False)
        self.delivered = 0
        self.failed = 0

    async def start(self) -> None:
        """Load and watch the configs, then take this replica's share of the events."""
        watcher = await self._configs.kv.watch(">")
        self._watch = asyncio.get_running_loop().create_task(self._follow_configs(watcher))
        js = self._bus.jetstream()
        config = api.ConsumerConfig(
            durable_name=subjects.push_consumer(),
            filter_subject=subjects.all_tenants_events(),
            deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=_ACK_WAIT,
            max_ack_pending=10 * _IN_HAND,
        )
        await add_shared_consumer(js, subjects.EVENTS_STREAM, config)
        self._runner = PullRunner(
            js, subjects.EVENTS_STREAM, subjects.push_consumer(), limit=_IN_HAND, handle=self._handle
        )
        await self._runner.start()

    async def stop(self, grace: float) -> None:
        """Take no more events; give deliveries in flight ``grace`` seconds (the rest are redelivered)."""
        if self._runner is not None:
            await self._runner.stop(grace)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._http.aclose()

    async def _follow_configs(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=60.0)
                except nats.errors.TimeoutError:
                    continue
                if entry is not None:
                    self._apply(entry.key, entry.value if entry.operation is None else None)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await watcher.stop()

    def _apply(self, key: str, value: bytes | None) -> None:
        tenant, task_id, config_id = key.split(".", 2)
        configs = self._index.setdefault((tenant, task_id), {})
        had = config_id in configs
        if value:
            try:
                configs[config_id] = self._bus.codec.decode(value, PushConfig)
            except MalformedPayload:
                return
            self._tenants[tenant] += 0 if had else 1
        elif had:
            del configs[config_id]
            self._tenants[tenant] -= 1
        if not configs:
            del self._index[(tenant, task_id)]
        if self._tenants[tenant] <= 0:
            del self._tenants[tenant]

    async def _handle(self, msg: Msg) -> None:
        tenant = msg.subject.split(".")[1]
        configs: list[PushConfig] = []
        task_id = ""
        if tenant in self._tenants:  # most events are of tenants without any webhook
            try:
                event = self._bus.codec.decode(msg.data, StreamResponse)
            except MalformedPayload:
                event = None
            task_id = (event.task_id if event is not None else None) or ""
            configs = list(self._index.get((tenant, task_id), {}).values())
        if configs:
            assert event is not None
            order = self._order.get(task_id) or self._order.setdefault(task_id, _InOrder())
            order.users += 1
            try:
                async with order.lock:  # one task's events in order (locks are first come, first served)
                    beat = asyncio.get_running_loop().create_task(_keep_alive(msg))
                    try:
                        await asyncio.gather(*(self._deliver(config, event) for config in configs))
                    finally:
                        beat.cancel()
            finally:
                order.users -= 1
                if not order.users:
                    del self._order[task_id]
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()

    async def _deliver(self, config: PushConfig, event: StreamResponse) -> None:
        headers = {"Content-Type": "application/a2a+json"}
        if config.authentication is not None:
            auth = config.authentication
            headers["Authorization"] = f"{auth.scheme} {auth.credentials or ''}".strip()
        if config.token:
            headers["X-A2A-Notification-Token"] = config.token
        body = self._bus.codec.encode(event)
        delay = self._settings.gateway_push_retry_delay
        attempts = self._settings.gateway_push_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._policy.check(config.url)
                response = await self._http.post(config.url, content=body, headers=headers)
            except A2AError as exc:
                self.failed += 1
                log.warning("push to %s refused: %s", config.url, exc.message)
                return
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            if attempt == attempts:
                break
            log.info("push to %s failed (%s), attempt %d of %d", config.url, reason, attempt, attempts)
            await asyncio.sleep(delay * 2 ** (attempt - 1))
        self.failed += 1
        log.warning("push to %s given up after %d attempts: %s", config.url, attempts, reason)


class _InOrder:
    """The events of one task being delivered: one at a time, in the order they arrived."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


async def _keep_alive(msg: Msg) -> None:
    """Tells JetStream the event is being delivered (retries can outlast the ack wait)."""
    while True:
        await asyncio.sleep(_ACK_WAIT / 3)
        with contextlib.suppress(nats.errors.Error):
            await msg.in_progress()
