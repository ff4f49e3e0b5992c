"""Who is calling and whether they may: API key -> tenant, then the tenant's rate limit and token budget."""

from __future__ import annotations

import math

from starlette.requests import Request

from bus import logs
from gateway.http import api_key_of
from gateway.keys import ApiKeys
from gateway.limits import Decision, RateLimiter, TokenBudget
from gateway.metrics import GatewayMetrics
from gateway.problems import Problem
from gateway.settings import GatewaySettings
from gateway.tracing import tag_tenant

__all__ = ["Admitted", "Guard", "own_origin"]


def own_origin(request: Request) -> str:
    """The gateway's origin as the request reached it (a page it served has this origin)."""
    return f"{request.url.scheme}://{request.url.netloc}"


class Admitted:
    """A request let in: its tenant and the rate-limit headers its response carries."""

    __slots__ = ("decision", "headers", "tenant")

    def __init__(self, tenant: str, decision: Decision) -> None:
        self.tenant = tenant
        self.decision = decision
        self.headers = decision.headers()


class Guard:
    """Authenticates requests and applies the tenant's limits."""

    def __init__(
        self,
        keys: ApiKeys,
        limiter: RateLimiter,
        budget: TokenBudget,
        settings: GatewaySettings,
        *,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._keys = keys
        self._limiter = limiter
        self._budget = budget
        self._settings = settings
        self._metrics = metrics or GatewayMetrics()

    async def admit(self, request: Request, *, spends_tokens: bool = False, widget: bool = False) -> Admitted:
        """Let ``request`` in or raise the problem that says why not.

        Args:
            spends_tokens: the request calls agents (the token budget applies).
            widget: a widget key may make it (holding a conversation).

        Raises:
            Problem: 401 without a valid key; 403 for a widget key on another route, or
                from a web page whose origin the tenant does not allow; 429 over the rate
                limit or, for requests that spend model tokens, over the daily token budget.
        """
        key = api_key_of(request)
        record = await self._keys.identify(key) if key else None
        if record is None:
            raise Problem(
                401,
                "unauthorized",
                "A valid API key is required",
                "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="hivewire"'},
            )
        tenant = record.tenant
        tag_tenant(tenant)
        logs.bind(tenant=tenant)
        if record.scope == "widget" and not widget:
            raise Problem(403, "key-scope", "Not with this key", "a widget key may only hold conversations")
        origin = request.headers.get("origin")
        if (
            origin is not None
            and origin != own_origin(request)
            and not self._settings.origin_allowed(tenant, origin)
        ):
            raise Problem(
                403,
                "origin-not-allowed",
                "Origin not allowed",
                f"pages at {origin} may not use tenant {tenant!r}'s keys (HIVEWIRE_GATEWAY_CORS_ORIGINS)",
            )
        rate, burst, _ = self._settings.limits_for(tenant)
        decision = await self._limiter.check(tenant, rate=rate, burst=burst)
        if not decision.allowed:
            self._metrics.throttled(tenant, "rate")
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"tenant {tenant!r} may send {rate:g} requests per second (bursts of {burst})",
                headers=decision.headers(),
            )
        admitted = Admitted(tenant, decision)
        if spends_tokens:
            await self.require_tokens(admitted)
        return admitted

    async def require_tokens(self, admitted: Admitted) -> None:
        """Refuse a request that would spend model tokens once the tenant's daily budget is used up
        (for routes that learn only from the body whether they spend any).

        Raises:
            Problem: 429 over the daily token budget.
        """
        tenant, decision = admitted.tenant, admitted.decision
        _, _, daily = self._settings.limits_for(tenant)
        renews_in = await self._budget.exhausted(tenant, daily, used=decision.tokens_today)
        if renews_in is not None:
            self._metrics.throttled(tenant, "budget")
            raise Problem(
                429,
                "token-budget-exhausted",
                "Daily token budget used up",
                f"tenant {tenant!r} used its {daily} model tokens for today (UTC)",
                headers={**decision.headers(), "Retry-After": str(math.ceil(renews_in))},
            )
