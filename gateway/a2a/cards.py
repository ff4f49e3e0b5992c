"""Agent cards as A2A clients fetch them: the public card at each interface's well-known path, and the
extended card for authenticated callers.

An agent's card on the bus says what it does; the gateway adds where and how
to reach it: the JSON-RPC and HTTP+JSON bindings at the same URL (their paths
never overlap), A2A over NATS when the operator publishes a NATS URL for
clients, the bearer API key as security scheme, and what the gateway itself
supports (streaming, push notifications, the extended card).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from agents.card import AgentCard, AgentExtension, AgentInterface
from agents.mesh import Mesh
from gateway.discovery import live_agent
from gateway.settings import GatewaySettings

__all__ = ["NATS_BINDING", "TENANT_EXTENSION", "Cards", "base_url", "card_response"]

PROTOCOL_VERSION = "1.0"
# docs/a2a-nats.md: Hivewire's subjects, headers and streams as an A2A custom protocol binding.
NATS_BINDING = "https://hivewire.dev/a2a/bindings/nats/v1"
# The extended card's extension: the caller's tenant and its limits.
TENANT_EXTENSION = "https://hivewire.dev/a2a/ext/tenant/v1"

_SECURITY_SCHEMES = {
    "apiKey": {"httpAuthSecurityScheme": {"scheme": "Bearer", "description": "A Hivewire API key"}}
}
_SECURITY: tuple[dict[str, Any], ...] = ({"schemes": {"apiKey": {"list": []}}},)
_encoder = msgspec.json.Encoder()


class Cards:
    """Cards of the live agents, as served at one base URL and path."""

    def __init__(self, settings: GatewaySettings, mesh: Mesh) -> None:
        self._settings = settings
        self._mesh = mesh

    async def public(self, agent_name: str, base: str, path: str, *, tenant: str | None) -> AgentCard:
        """The card of ``agent_name`` served at ``base + path``, to a caller of ``tenant`` (``None``:
        an anonymous caller, to whom an agent of some tenants only is unknown).

        Raises:
            Problem: 404, no such agent is running (that the caller may know of).
        """
        agent = await live_agent(self._mesh, agent_name, tenant=tenant)
        card = agent.card
        url = base.rstrip("/") + path
        interfaces = [
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION),
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version=PROTOCOL_VERSION),
        ]
        if self._settings.gateway_nats_public_url:
            nats_url = self._settings.gateway_nats_public_url.rstrip("/") + "/" + agent.name
            interfaces.append(
                AgentInterface(url=nats_url, protocol_binding=NATS_BINDING, protocol_version=PROTOCOL_VERSION)
            )
        skills = tuple(
            skill if skill.tags else msgspec.structs.replace(skill, tags=(skill.id,)) for skill in card.skills
        )
        return msgspec.structs.replace(
            card,
            supported_interfaces=tuple(interfaces),
            skills=skills,
            capabilities=msgspec.structs.replace(
                card.capabilities,
                streaming=True,
                push_notifications=self._settings.gateway_push,
                extended_agent_card=True,
            ),
            security_schemes=_SECURITY_SCHEMES,
            security_requirements=_SECURITY,
        )

    async def extended(self, tenant: str, agent_name: str, base: str, path: str) -> AgentCard:
        """The card for an authenticated caller: the public one, plus its tenant and limits.

        Raises:
            Problem: 404, no such agent is running for ``tenant``.
        """
        card = await self.public(agent_name, base, path, tenant=tenant)
        rate, burst, daily = self._settings.limits_for(tenant)
        extension = AgentExtension(
            uri=TENANT_EXTENSION,
            description="Hivewire: the caller's tenant and the limits that apply to it",
            params={"tenant": tenant, "rate": rate, "burst": burst, "dailyTokens": daily},
        )
        capabilities = msgspec.structs.replace(
            card.capabilities, extensions=(*card.capabilities.extensions, extension)
        )
        return msgspec.structs.replace(card, capabilities=capabilities)


def card_response(request: Request, card: AgentCard) -> Response:
    """``card`` as JSON, cacheable, with an ETag (``304`` when the client has it already)."""
    body = _encoder.encode(card)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "max-age=30", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type="application/json")


def base_url(request: Request, settings: GatewaySettings) -> str:
    """The gateway's URL as clients see it: the configured public URL, else the request's."""
    return (settings.gateway_public_url or str(request.base_url)).rstrip("/")
