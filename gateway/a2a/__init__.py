"""The A2A protocol endpoint: standard A2A clients talk to the mesh, over JSON-RPC or HTTP+JSON.

Each live agent has an interface URL, ``/a2a/agents/<agent>`` (and ``/a2a``
for the gateway's default agent), where both bindings answer: JSON-RPC by
POST to the URL itself, HTTP+JSON at the protocol's resource paths below it.
Its card is at ``<url>/.well-known/agent-card.json`` (the default agent's also
at the origin's). The bindings share one implementation of the operations
(:mod:`gateway.a2a.operations`); messages become durable tasks, so everything
works from any gateway replica.

| module | one concept |
|---|---|
| ``operations`` | the operations themselves, whichever binding |
| ``jsonrpc``, ``rest`` | the two bindings |
| ``v03`` | A2A v0.3's JSON-RPC methods, at the same URL as v1.0's |
| ``models``, ``errors`` | requests and responses; the protocol's errors in each binding |
| ``cards`` | public and extended agent cards |
| ``push``, ``webhooks`` | push configs and webhook URLs; delivering events to webhooks |
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.mesh import Mesh
from gateway.a2a.cards import Cards, base_url, card_response
from gateway.a2a.jsonrpc import JsonRpcBinding
from gateway.a2a.operations import Operations
from gateway.a2a.push import PushConfigs, WebhookPolicy
from gateway.a2a.rest import RestBinding
from gateway.events import ConversationFeed
from gateway.guard import Guard
from gateway.settings import GatewaySettings
from gateway.usage import UsageMeter

__all__ = ["A2AEndpoint"]

_WELL_KNOWN = "/.well-known/agent-card.json"


class A2AEndpoint:
    """The A2A routes of every live agent."""

    def __init__(
        self,
        settings: GatewaySettings,
        mesh: Mesh,
        guard: Guard,
        feed: ConversationFeed,
        usage: UsageMeter,
        push: PushConfigs | None,
    ) -> None:
        self._settings = settings
        self._cards = Cards(settings, mesh)
        policy = WebhookPolicy(settings.gateway_push_allowed_hosts, timeout=settings.gateway_push_timeout)
        operations = Operations(settings, mesh, feed, usage, push, policy)
        self._jsonrpc = JsonRpcBinding(settings, guard, operations, self._cards)
        self._rest = RestBinding(settings, guard, operations, self._cards)

    def routes(self) -> list[Route]:
        """Cards, JSON-RPC and HTTP+JSON routes: the busiest first."""
        default = self._settings.gateway_agent

        def named(request: Request) -> str:
            return str(request.path_params["agent"])

        return [
            Route("/a2a/agents/{agent}", self._agent_rpc, methods=["POST"]),
            Route("/a2a", self._default_rpc, methods=["POST"]),
            *self._rest.routes("/a2a/agents/{agent}", named),
            *self._rest.routes("/a2a", lambda request: default),
            Route("/a2a/agents/{agent}" + _WELL_KNOWN, self._agent_card, methods=["GET"]),
            Route("/a2a" + _WELL_KNOWN, self._default_card, methods=["GET"]),
            Route(_WELL_KNOWN, self._default_card, methods=["GET"]),
        ]

    async def _agent_rpc(self, request: Request) -> Response:
        return await self._jsonrpc.handle(request, request.path_params["agent"])

    async def _default_rpc(self, request: Request) -> Response:
        return await self._jsonrpc.handle(request, self._settings.gateway_agent)

    async def _agent_card(self, request: Request) -> Response:
        agent = request.path_params["agent"]
        base = base_url(request, self._settings)
        # Public: an agent of some tenants only is, to an anonymous caller, no agent at all.
        card = await self._cards.public(agent, base, f"/a2a/agents/{agent}", tenant=None)
        return card_response(request, card)

    async def _default_card(self, request: Request) -> Response:
        base = base_url(request, self._settings)
        card = await self._cards.public(self._settings.gateway_agent, base, "/a2a", tenant=None)
        return card_response(request, card)
