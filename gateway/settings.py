"""Settings of a gateway process: the agent settings (bus, Redis, history) plus HTTP and limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.settings import AgentSettings

__all__ = ["GatewaySettings", "TenantLimits"]


class TenantLimits(BaseModel):
    """One tenant's limits; what is left out falls back to the gateway's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    daily_tokens: int | None = Field(default=None, ge=0)


class GatewaySettings(AgentSettings):
    """Read from ``HIVEWIRE_*`` environment variables (and ``.env``)."""

    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    gateway_port: int = Field(default=8080, ge=0, le=65535, description="Port the gateway listens on.")
    gateway_public_url: str | None = Field(
        default=None,
        description="The gateway's URL as clients see it (agent cards); http://host:port when unset.",
    )
    gateway_max_body: int = Field(
        default=1 << 20, ge=1024, description="Largest request body in bytes; larger ones get 413."
    )
    gateway_max_headers: int = Field(
        default=16384,
        ge=1024,
        description="Largest total size of a request's headers in bytes (431).",
    )
    gateway_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a conversation turn or skill call may take (504 after)."
    )
    gateway_agent: str = Field(
        default="triage",
        description="The agent a conversation talks to when the request names none (the support desk's).",
    )
    gateway_skill: str = Field(default="chat", description="The skill a conversation turn calls by default.")
    gateway_rate: float = Field(default=20.0, gt=0, description="Requests per second per tenant.")
    gateway_burst: int = Field(default=40, ge=1, description="Requests a tenant may send at once.")
    gateway_daily_tokens: int = Field(
        default=2_000_000, ge=0, description="LLM tokens per tenant per UTC day (0: no budget)."
    )
    gateway_tenant_limits: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description='Per-tenant overrides, e.g. {"acme": {"rate": 50, "burst": 100, "daily_tokens": 0}}.',
    )
    gateway_sse_ping: float = Field(
        default=15.0, gt=0, description="Seconds between keep-alive comments on an idle event stream."
    )
    gateway_key_cache: float = Field(
        default=30.0, ge=0, description="Seconds a verified API key is trusted without a lookup."
    )
    gateway_stream_timeout: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds an A2A event stream stays open while its task runs (clients then resubscribe).",
    )
    gateway_push: bool = Field(
        default=True, description="A2A push notifications: webhook configs and their delivery."
    )
    gateway_push_allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Webhook hosts (names, addresses or networks such as 10.0.0.0/8) allowed although private; "
            "loopback, private, link-local and reserved addresses are refused otherwise."
        ),
    )
    gateway_push_timeout: float = Field(default=10.0, gt=0, description="Seconds one webhook call may take.")
    gateway_push_attempts: int = Field(
        default=5, ge=1, description="Calls of a webhook for one event before giving up on it."
    )
    gateway_push_retry_delay: float = Field(
        default=1.0, ge=0, description="Seconds before the first retry of a webhook call (then doubling)."
    )
    gateway_nats_public_url: str | None = Field(
        default=None,
        description="A NATS URL clients may use: agent cards then also declare the A2A-over-NATS binding.",
    )
    gateway_cors_origins: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Web origins allowed to call with each tenant's keys (the chat widget on a site), "
        'e.g. {"acme": ["https://shop.acme.com"]}; "*" allows any origin.',
    )
    gateway_agent_memory: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds an agent with no live replica left is still reported, with 0, by the "
        "hivewire.mesh.agent.replicas gauge (so that HivewireAgentDown can fire).",
    )
    gateway_console: bool = Field(default=True, description="Serve the web console at / and /console.")

    def origin_allowed(self, tenant: str, origin: str) -> bool:
        """Whether a page at ``origin`` may call the gateway with ``tenant``'s keys."""
        allowed = self.gateway_cors_origins.get(tenant, ())
        return "*" in allowed or origin in allowed

    def any_origin_allowed(self, origin: str) -> bool:
        """Whether ``origin`` is allowed for some tenant (a preflight carries no key to tell which)."""
        return any("*" in allowed or origin in allowed for allowed in self.gateway_cors_origins.values())

    def limits_for(self, tenant: str) -> tuple[float, int, int]:
        """The (rate, burst, daily tokens) that apply to ``tenant``."""
        own = self.gateway_tenant_limits.get(tenant)
        if own is None:  # most tenants: no override (and no model built per request)
            return self.gateway_rate, self.gateway_burst, self.gateway_daily_tokens
        return (
            own.rate if own.rate is not None else self.gateway_rate,
            own.burst if own.burst is not None else self.gateway_burst,
            own.daily_tokens if own.daily_tokens is not None else self.gateway_daily_tokens,
        )
