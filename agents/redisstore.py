"""Redis, used when it is there: one pooled client per process that degrades instead of failing.

When Redis cannot be reached, every operation returns its "nothing there"
answer at once (a miss, an empty list) and the callers fall back to their
in-process stores; the outage is logged once and marked on the current span.
After ``retry_interval`` seconds the next operation tries Redis again, so a
Redis that comes back is used again without a restart.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace

if TYPE_CHECKING:
    import redis.asyncio

    from agents.settings import AgentSettings

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedisStore:
    """A Redis connection pool that reports whether Redis is usable right now."""

    def __init__(
        self,
        url: str | None,
        *,
        timeout: float = 0.5,
        retry_interval: float = 2.0,
        password: str | None = None,
    ) -> None:
        """Args:
        url: ``redis://`` or ``rediss://`` (TLS); ``None``: no Redis, in-process stores only.
        timeout: seconds a command or connection attempt may take before Redis counts as down.
        retry_interval: seconds between attempts while Redis is down.
        password: overrides a password in ``url``.
        """
        self.url = url
        self._retry_interval = retry_interval
        self._down_since: float | None = None
        self._next_try = 0.0
        self._client: redis.asyncio.Redis | None = None
        self._unreachable: tuple[type[BaseException], ...] = ()
        if url is not None:
            # Imported only when configured: the package takes about 0.6 s to import.
            aioredis = importlib.import_module("redis.asyncio")
            exceptions = importlib.import_module("redis.exceptions")
            retry = importlib.import_module("redis.asyncio.retry")
            backoff = importlib.import_module("redis.backoff")
            # Errors that mean "Redis is not reachable now", as opposed to a bug in a command.
            self._unreachable = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
            self._client = aioredis.Redis.from_url(
                url,
                password=password,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # redis-py retries a failed command ten times by default, which turns
                # an outage into seconds of waiting per call; here it is noticed at once.
                retry=retry.Retry(backoff.NoBackoff(), 0),
                health_check_interval=0,
            )

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> RedisStore:
        """The store the process's settings describe (``HIVEWIRE_REDIS_*``)."""
        return cls(
            settings.redis_url,
            timeout=settings.redis_timeout,
            retry_interval=settings.redis_retry_interval,
            password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        )

    @property
    def configured(self) -> bool:
        """True when a Redis URL was given."""
        return self._client is not None

    @property
    def available(self) -> bool:
        """True when Redis is configured and was reachable at the last attempt."""
        return self._client is not None and self._down_since is None

    async def run(self, operation: Callable[[redis.asyncio.Redis], Awaitable[T]], default: T) -> T:
        """Run ``operation`` on Redis, or return ``default`` if Redis is absent or unreachable."""
        client = self._client
        if client is None:
            return default
        now = time.monotonic()
        if self._down_since is not None and now < self._next_try:
            return default
        try:
            result = await operation(client)
        except self._unreachable as exc:
            self._mark_down(now, exc)
            return default
        except RuntimeError as exc:
            if not _closed_under_it(exc):
                raise
            self._mark_down(now, exc)
            return default
        if self._down_since is not None:
            log.warning("Redis at %s is back after %.1fs", _safe(self.url), now - self._down_since)
            self._down_since = None
        return result

    async def ping(self) -> bool:
        """True if Redis answers now."""
        return await self.run(lambda r: r.ping(), False) is True

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()

    def _mark_down(self, now: float, exc: BaseException) -> None:
        self._next_try = now + self._retry_interval
        span = trace.get_current_span()
        span.add_event("redis unavailable", {"error.type": type(exc).__name__})
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "Redis at %s is unreachable (%s); using in-process stores until it is back",
                _safe(self.url),
                exc,
            )


def _closed_under_it(exc: RuntimeError) -> bool:
    """True for uvloop's error on a connection that closed between being made and being written
    to (Redis went away just then), which redis-py passes on as it is, not as a ConnectionError."""
    return str(exc).startswith("unable to perform operation on")


def _safe(url: str | None) -> str:
    """The URL without its password, for logs."""
    if url is None or "@" not in url:
        return str(url)
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
