"""The REST API: its routes (conversations, skills and tasks, agents, usage) in one table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.card import AgentCard
from agents.mesh import Mesh
from agents.registry import LiveAgent
from gateway.conversation_routes import ConversationRoutes
from gateway.discovery import live_agent, live_agents
from gateway.events import ConversationFeed
from gateway.guard import Guard
from gateway.http import int_param, json_response
from gateway.settings import GatewaySettings
from gateway.skill_routes import SkillRoutes
from gateway.turns import Conversations
from gateway.usage import Usage, UsageMeter

__all__ = ["AgentDetail", "AgentSummary", "Identity", "RestApi"]

Endpoint = Callable[[Request], Awaitable[Response]]


class AgentSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A live agent as listed by the API."""

    name: str
    description: str
    version: str
    replicas: int
    skills: list[str]
    in_flight: int = 0  # requests its replicas are handling, as of their last heartbeats


class Identity(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Who the API key speaks for."""

    tenant: str


class AgentDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A live agent: its card (skills with their input and output schemas) and replica count."""

    replicas: int
    card: AgentCard


class RestApi:
    """The REST routes, over the services they need."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        guard: Guard,
        conversations: Conversations,
        feed: ConversationFeed,
        usage: UsageMeter,
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._usage = usage
        self._conversations = ConversationRoutes(settings, mesh, guard, conversations, feed)
        self._skills = SkillRoutes(settings, mesh, guard, usage)

    def routes(self) -> list[Route]:
        """Every REST route, the ones called on every turn first.

        No two paths overlap, so the order changes no answer; Starlette tries the
        routes one by one, so it saves the busiest requests a dozen futile matches.
        One route per path, so that a 405's ``Allow`` names every method the path has.
        """
        conversations, skills = self._conversations, self._skills
        return [
            Route("/v1/agents/{agent}/skills/{skill}", skills.invoke, methods=["POST"]),
            Route(
                "/v1/conversations/{cid}/messages",
                _by_method(POST=conversations.send, GET=conversations.history),
                methods=["GET", "POST"],
            ),
            Route("/v1/agents/{agent}/skills/{skill}/tasks", skills.submit, methods=["POST"]),
            Route("/v1/tasks/{task_id}", skills.get_task, methods=["GET"]),
            Route(
                "/v1/conversations",
                _by_method(POST=conversations.create, GET=conversations.listing),
                methods=["GET", "POST"],
            ),
            Route("/v1/conversations/{cid}/events", conversations.follow, methods=["GET"]),
            Route("/v1/conversations/{cid}", conversations.get, methods=["GET"]),
            Route("/v1/agents", self.list_agents, methods=["GET"]),
            Route("/v1/agents/{agent}", self.get_agent, methods=["GET"]),
            Route("/v1/tasks/{task_id}/cancel", skills.cancel_task, methods=["POST"]),
            Route("/v1/tasks", skills.list_tasks, methods=["GET"]),
            Route("/v1/usage", self.read_usage, methods=["GET"]),
            Route("/v1/usage/history", self.read_usage_history, methods=["GET"]),
            Route("/v1/me", self.identity, methods=["GET"]),
        ]

    async def list_agents(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        live = await live_agents(self._mesh, tenant=admitted.tenant)
        return json_response([_summary(agent) for agent in live], headers=admitted.headers)

    async def get_agent(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        agent = await live_agent(self._mesh, request.path_params["agent"], tenant=admitted.tenant)
        return json_response(AgentDetail(replicas=agent.replicas, card=agent.card), headers=admitted.headers)

    async def read_usage_history(self, request: Request) -> Response:
        """The tenant's usage hour by hour (``?hours=``, 1 to 192, default 24)."""
        admitted = await self._guard.admit(request)
        hours = int_param(request, "hours", 24, low=1, high=192)
        return json_response(await self._usage.history(admitted.tenant, hours), headers=admitted.headers)

    async def identity(self, request: Request) -> Response:
        """The tenant the request's key belongs to (the console's sign-in)."""
        admitted = await self._guard.admit(request)
        return json_response(Identity(tenant=admitted.tenant), headers=admitted.headers)

    async def read_usage(self, request: Request) -> Response:
        admitted = await self._guard.admit(request)
        _, _, daily = self._settings.limits_for(admitted.tenant)
        usage: Usage = await self._usage.read(admitted.tenant, daily)
        return json_response(usage, headers=admitted.headers)


def _summary(agent: LiveAgent) -> AgentSummary:
    return AgentSummary(
        name=agent.name,
        description=agent.card.description,
        version=agent.card.version,
        replicas=agent.replicas,
        skills=[skill.id for skill in agent.card.skills],
        in_flight=agent.load.in_flight,
    )


def _by_method(**endpoints: Endpoint) -> Endpoint:
    """One endpoint that hands each request to the one for its method (HEAD to GET's)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return endpoint
