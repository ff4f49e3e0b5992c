"""Agent cards as A2A clients fetch them: the public card at each interface's well-known path, and the
extended card for authenticated callers.

An agent's card on the bus says what it does; the gateway adds where and how
to reach it: the JSON-RPC and HTTP+JSON bindings at the same URL (their paths
never overlap), A2A over NATS when the operator publishes a NATS URL for
clients, the bearer API key as security scheme, and what the gateway itself
supports (streaming, push notifications, the extended card).

The card also carries what an A2A 0.3 client reads (it has no
``supportedInterfaces``): the JSON-RPC URL as ``url`` with
``protocolVersion`` 0.3.0, ``preferredTransport``, ``additionalInterfaces``,
``supportsAuthenticatedExtendedCard``, ``security``, and each security scheme
in both forms at once (``{"httpAuthSecurityScheme": {...}, "type": "http",
"scheme": ...}``). v1.0 readers skip those fields, and the interface list
declares the 0.3 one too, after the 1.0 ones, so a v1.0 client still picks 1.0.
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

__all__ = [
    "NATS_BINDING",
    "TENANT_EXTENSION",
    "Cards",
    "LegacyInterface",
    "ServedCard",
    "base_url",
    "card_response",
]

PROTOCOL_VERSION = "1.0"
V03_VERSION = "0.3"
# docs/a2a-nats.md: Hivewire's subjects, headers and streams as an A2A custom protocol binding.
NATS_BINDING = "https://hivewire.dev/a2a/bindings/nats/v1"
# The extended card's extension: the caller's tenant and its limits.
TENANT_EXTENSION = "https://hivewire.dev/a2a/ext/tenant/v1"

_BEARER = {"scheme": "Bearer", "description": "A Hivewire API key"}
# v1.0's form (a oneof member) and v0.3's (with ``type``) in one object: each reader skips the other's.
_SECURITY_SCHEMES = {"apiKey": {"httpAuthSecurityScheme": _BEARER, "type": "http", **_BEARER}}
_SECURITY: tuple[dict[str, Any], ...] = ({"schemes": {"apiKey": {"list": []}}},)
_V03_SECURITY: tuple[dict[str, list[str]], ...] = ({"apiKey": []},)
_encoder = msgspec.json.Encoder()


class LegacyInterface(msgspec.Struct, frozen=True, kw_only=True):
    """An interface as A2A 0.3 declares it."""

    url: str
    transport: str


class ServedCard(AgentCard, frozen=True, kw_only=True):
    """An agent's card as the gateway serves it: v1.0's, plus the top-level fields of v0.3's."""

    url: str = ""
    protocol_version: str = ""
    preferred_transport: str = ""
    additional_interfaces: tuple[LegacyInterface, ...] = ()
    supports_authenticated_extended_card: bool = False
    security: tuple[dict[str, list[str]], ...] = ()


class Cards:
    """Cards of the live agents, as served at one base URL and path."""

    def __init__(self, settings: GatewaySettings, mesh: Mesh) -> None:
        self._settings = settings
        self._mesh = mesh

    async def public(self, agent_name: str, base: str, path: str, *, tenant: str | None) -> ServedCard:
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
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=V03_VERSION),
        ]
        if self._settings.gateway_nats_public_url:
            nats_url = self._settings.gateway_nats_public_url.rstrip("/") + "/" + agent.name
            interfaces.append(
                AgentInterface(url=nats_url, protocol_binding=NATS_BINDING, protocol_version=PROTOCOL_VERSION)
            )
        skills = tuple(
            skill if skill.tags else msgspec.structs.replace(skill, tags=(skill.id,)) for skill in card.skills
        )
        fields = {name: getattr(card, name) for name in card.__struct_fields__}
        return ServedCard(
            **{
                **fields,
                "supported_interfaces": tuple(interfaces),
                "skills": skills,
                "capabilities": msgspec.structs.replace(
                    card.capabilities,
                    streaming=True,
                    push_notifications=self._settings.gateway_push,
                    extended_agent_card=True,
                ),
                "security_schemes": _SECURITY_SCHEMES,
                "security_requirements": _SECURITY,
            },
            url=url,
            protocol_version=V03_VERSION + ".0",
            preferred_transport="JSONRPC",
            additional_interfaces=(LegacyInterface(url=url, transport="JSONRPC"),),
            supports_authenticated_extended_card=True,
            security=_V03_SECURITY,
        )

    async def extended(self, tenant: str, agent_name: str, base: str, path: str) -> ServedCard:
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
