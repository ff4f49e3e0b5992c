"""The gateway's ASGI app: the services it runs on, built at start-up and closed at shutdown.

``create_app(settings)`` returns a Starlette app; ``hivewire gateway`` serves
it with uvicorn (uvloop, httptools). Nothing is kept per conversation in the
process: any replica serves any request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import version

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.history import ConversationHistory
from agents.mesh import Mesh
from agents.metrics import observe_connections
from agents.redisstore import RedisStore
from bus.client import Bus
from bus.telemetry import Telemetry, TelemetryConfigError
from gateway import problems
from gateway.a2a import A2AEndpoint
from gateway.a2a.push import PushConfigs, WebhookPolicy
from gateway.a2a.rest import unrouted
from gateway.a2a.webhooks import PushDelivery
from gateway.console import console_routes
from gateway.cors import CrossOrigin
from gateway.deadletters import DeadLetterRoutes
from gateway.discovery import live_agents
from gateway.events import ConversationFeed
from gateway.guard import Guard
from gateway.handoffs import HandoffQueue
from gateway.http import HeaderLimit, json_response
from gateway.index import ConversationIndex
from gateway.keys import ApiKeys
from gateway.limits import RateLimiter, TokenBudget
from gateway.mcp import McpEndpoint
from gateway.metrics import GatewayMetrics
from gateway.openapi import openapi_document
from gateway.probes import Health, readiness
from gateway.replicas import AgentReplicas
from gateway.rest import RestApi
from gateway.settings import GatewaySettings
from gateway.traces import TraceRoutes
from gateway.tracing import ServerSpans
from gateway.turn_records import TurnRecorder
from gateway.turns import Conversations
from gateway.usage import UsageMeter

__all__ = ["Services", "create_app"]

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the routes run on, connected at start-up."""

    bus: Bus
    mesh: Mesh
    redis: RedisStore
    history: ConversationHistory
    keys: ApiKeys
    guard: Guard
    usage: UsageMeter
    conversations: Conversations
    feed: ConversationFeed
    push: PushConfigs | None
    delivery: PushDelivery | None
    recorder: TurnRecorder
    unobserve: Callable[[], None]  # stops reporting the connections' state
    replicas: AgentReplicas | None  # reports each agent's live replicas, while metrics are collected

    @classmethod
    async def start(cls, settings: GatewaySettings, telemetry: Telemetry) -> Services:
        bus = await Bus.connect(
            settings,
            name="gateway",
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
        )
        try:
            # Agents come and go on heartbeats of seconds: a second-old view is fresh enough,
            # and spares the registry a read per request.
            mesh = await Mesh.open(bus, settings, registry_cache=1.0)
            keys = await ApiKeys.open(bus, cache_ttl=settings.gateway_key_cache)
            push = delivery = None
            if settings.gateway_push:
                push = await PushConfigs.open(bus.jetstream(), bus.codec, ttl=settings.task_retention)
                policy = WebhookPolicy(
                    settings.gateway_push_allowed_hosts, timeout=settings.gateway_push_timeout
                )
                delivery = PushDelivery(bus, push, policy, settings)
                await delivery.start()
        except BaseException:
            await bus.close()
            raise
        redis = RedisStore.from_settings(settings)
        history = ConversationHistory.from_settings(redis, settings, meter_provider=telemetry.meter_provider)
        budget = TokenBudget(redis)
        usage = UsageMeter(redis, budget, retry_interval=settings.redis_retry_interval)
        metrics = GatewayMetrics(telemetry.meter_provider)
        guard = Guard(keys, RateLimiter(redis, usage), budget, settings, metrics=metrics)
        conversations = Conversations(
            mesh,
            history,
            usage,
            ConversationIndex(mesh, redis, ttl=settings.state_ttl),
            metrics=metrics,
        )
        recorder = TurnRecorder(bus, conversations)
        try:
            await recorder.start()
        except BaseException:
            await bus.close()
            await redis.close()
            raise
        replicas = None
        if bus.telemetry.metering:
            replicas = AgentReplicas(
                mesh.registry,
                telemetry.meter_provider,
                interval=settings.heartbeat_interval,
                remember=settings.gateway_agent_memory,
            )
            replicas.start()
        return cls(
            bus=bus,
            mesh=mesh,
            redis=redis,
            history=history,
            keys=keys,
            guard=guard,
            usage=usage,
            conversations=conversations,
            feed=ConversationFeed(bus),
            push=push,
            delivery=delivery,
            recorder=recorder,
            unobserve=observe_connections(telemetry.meter_provider, bus, redis),
            replicas=replicas,
        )

    async def close(self, grace: float) -> None:
        self.unobserve()
        if self.replicas is not None:
            await self.replicas.stop()
        if self.delivery is not None:
            await self.delivery.stop(grace)
        await self.recorder.stop(grace)
        await self.bus.close()
        await self.history.close()  # one last try at writing what waits for Redis
        await self.usage.close()
        await self.redis.close()


def create_app(settings: GatewaySettings, telemetry: Telemetry | None = None) -> Starlette:
    """The gateway app; it connects to the mesh when the server starts it (ASGI lifespan)."""
    telemetry = telemetry or Telemetry(service_name="hivewire-gateway")
    holder: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings, telemetry)
        holder["services"] = services
        rest = RestApi(
            settings, services.mesh, services.guard, services.conversations, services.feed, services.usage
        )
        a2a = A2AEndpoint(
            settings, services.mesh, services.guard, services.feed, services.usage, services.push
        )
        # Before the operational routes: the API's requests are the many, probes the few.
        handoffs = HandoffQueue(settings, services.mesh, services.guard, services.conversations)
        dead_letters = DeadLetterRoutes(services.mesh, services.guard)
        traces = TraceRoutes(services.bus, services.guard)
        mcp = McpEndpoint(
            settings,
            services.mesh,
            services.guard,
            services.usage,
            tracer_provider=telemetry.tracer_provider,
        )
        app.router.routes[:0] = [
            *rest.routes(),
            *a2a.routes(),
            *mcp.routes(),
            *handoffs.routes(),
            *dead_letters.routes(),
            *traces.routes(),
        ]
        log.info("gateway connected to %s", services.bus.connected_url)
        try:
            async with mcp.running():
                yield
        finally:
            await services.close(grace=5.0)

    async def healthz(request: Request) -> Response:
        return json_response(Health())

    async def readyz(request: Request) -> Response:
        services = holder.get("services")
        if services is None:
            state = await readiness(None, None, None)
        else:
            state = await readiness(services.bus, services.mesh.registry, services.redis)
        return json_response(state, 200 if state.ready else 503)

    async def metrics(request: Request) -> Response:
        try:
            body, content_type = telemetry.prometheus_text()
        except TelemetryConfigError as exc:
            raise problems.Problem(404, "metrics-off", "Metrics are not served", str(exc)) from None
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        services = holder.get("services")
        # A public document: the agents of some tenants only are theirs to know of.
        live = await live_agents(services.mesh, tenant=None) if services is not None else []
        return json_response(openapi_document(version("hivewire"), live, console=settings.gateway_console))

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            *console_routes(console=settings.gateway_console),
        ],
        middleware=[
            Middleware(
                ServerSpans,
                tracer_provider=telemetry.tracer_provider,
                meter_provider=telemetry.meter_provider,
            ),
            # CORS headers on every answer, the refusals and unexpected errors' too.
            Middleware(CrossOrigin, settings=settings),
            # Inside the span, so that it records the status of an unexpected error's answer.
            Middleware(problems.LastResort),
            Middleware(HeaderLimit, limit=settings.gateway_max_headers),
        ],
        # Below /a2a/, a URL of nothing is answered in the HTTP+JSON binding's error format.
        exception_handlers={**problems.EXCEPTION_HANDLERS, HTTPException: unrouted(problems.handle)},
        lifespan=lifespan,
    )
