"""``notifications/tools/list_changed`` for connected MCP clients, when a tenant's live skills change.

Clients of the 2026-07-28 protocol subscribe with ``subscriptions/listen``
(the SDK's :class:`ListenHandler`, one subscription bus per tenant); clients of
the handshake era get the notification on their session. While anyone listens,
the registry (cached for a second by the gateway) is read every half heartbeat
and each listening tenant's tool list compared with the one it last had: an
agent that joins, leaves or changes its skills is announced to that tenant only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp_types import SubscriptionsListenRequestParams, SubscriptionsListenResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request

from agents.llm.cache import digest
from gateway.mcp_tools import SkillTool

__all__ = ["ToolChanges"]

log = logging.getLogger(__name__)

MAX_SESSIONS = 1000
"""Handshake-era sessions told of changes per tenant (the ones that listed tools last)."""

Visible = Callable[[str], Awaitable[Mapping[str, SkillTool]]]


class ToolChanges:
    """Who listens for tool-list changes, per tenant, and the watch that tells them."""

    def __init__(self, visible: Visible, *, interval: float) -> None:
        self._visible = visible
        self._interval = interval
        self._buses: dict[str, InMemorySubscriptionBus] = {}
        self._handlers: dict[str, ListenHandler] = {}
        self._streams: dict[str, int] = {}  # open listen streams by tenant
        # Handshake-era sessions by tenant and session id: the last request's proxy of each
        # (it reaches the session's standalone stream); at most MAX_SESSIONS per tenant.
        self._sessions: dict[str, dict[str, ServerSession]] = {}
        self._seen: dict[str, str] = {}  # tenant -> digest of its tool list as last told
        self._wake = asyncio.Event()
        self.announced = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._watch(), name="mcp tool changes")
        try:
            yield
        finally:
            for handler in self._handlers.values():
                handler.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def listen(
        self, tenant: str, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """Serve one ``subscriptions/listen`` stream of ``tenant`` until the client goes."""
        if tenant not in self._listening():
            self._seen[tenant] = _fingerprint(await self._visible(tenant))
        handler = self._handlers.get(tenant)
        if handler is None:
            bus = self._buses[tenant] = InMemorySubscriptionBus()
            handler = self._handlers[tenant] = ListenHandler(bus)
        self._streams[tenant] = self._streams.get(tenant, 0) + 1
        self._wake.set()
        try:
            return await handler(ctx, params)
        finally:
            self._streams[tenant] -= 1

    def watch_session(
        self, tenant: str, ctx: ServerRequestContext[Any, Any], listed: Mapping[str, SkillTool]
    ) -> None:
        """Tell ``ctx``'s session of changes to what it just ``listed``, if it is of the handshake
        era (which has no ``subscriptions/listen``: the notification goes on its session)."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        session_id = (
            ctx.request.headers.get(MCP_SESSION_ID_HEADER) if isinstance(ctx.request, Request) else None
        )
        if session_id is None:
            return  # a stateless request: nowhere to send a notification later
        if tenant not in self._listening():
            self._seen[tenant] = _fingerprint(listed)
        sessions = self._sessions.setdefault(tenant, {})
        sessions.pop(session_id, None)
        sessions[session_id] = ctx.session
        while len(sessions) > MAX_SESSIONS:
            del sessions[next(iter(sessions))]  # the longest silent
        self._wake.set()

    def _listening(self) -> list[str]:
        tenants = {tenant for tenant, count in self._streams.items() if count > 0}
        tenants.update(tenant for tenant, sessions in self._sessions.items() if sessions)
        return sorted(tenants)

    async def _watch(self) -> None:
        while True:
            tenants = self._listening()
            for gone in set(self._seen) - set(tenants):
                del self._seen[gone]  # a tenant listening again starts from what it lists then
            if not tenants:
                self._wake.clear()
                await self._wake.wait()
                continue
            await asyncio.sleep(self._interval)
            for tenant in tenants:
                try:
                    await self._check(tenant)
                except Exception:
                    log.warning("could not read the tools of tenant %s", tenant, exc_info=True)

    async def _check(self, tenant: str) -> None:
        now = _fingerprint(await self._visible(tenant))
        before = self._seen.setdefault(tenant, now)
        if now == before:
            return
        self._seen[tenant] = now
        self.announced += 1
        bus = self._buses.get(tenant)
        if bus is not None:
            await bus.publish(ToolsListChanged())
        sessions = self._sessions.get(tenant, {})
        for session_id, session in list(sessions.items()):
            try:
                await session.send_tool_list_changed()
            except Exception:  # noqa: BLE001 - a session that went away hears nothing more
                sessions.pop(session_id, None)


def _fingerprint(tools: Mapping[str, SkillTool]) -> str:
    return digest(sorted((name, tool.tool.model_dump(mode="json")) for name, tool in tools.items()))
