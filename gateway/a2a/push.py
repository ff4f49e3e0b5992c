"""Push notification configs (per tenant and task, in the ``hw_push`` bucket) and the check of webhook URLs.

A webhook is a URL the gateway will call, so a config is a way to make the
gateway send requests where its operator did not intend (server-side
request forgery): to a cloud's metadata address, an admin port on
localhost, a database in the private network. :class:`WebhookPolicy` refuses
URLs whose host resolves to a loopback, private, link-local, shared, reserved
or multicast address, unless the operator allowed that host or network
(``HIVEWIRE_GATEWAY_PUSH_ALLOWED_HOSTS``). It checks when a config is stored
and again before every call, since a name may resolve elsewhere later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from agents.infrastructure import ensure_bucket, entries
from bus import subjects
from bus.a2a import new_id
from bus.codec import Codec
from gateway.a2a.errors import invalid
from gateway.a2a.models import PushConfig

__all__ = ["PushConfigs", "WebhookPolicy"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PushConfigs:
    """The push notification configs of every tenant's tasks, keyed ``<tenant>.<task>.<config>``."""

    def __init__(self, kv: KeyValue, codec: Codec) -> None:
        self.kv = kv
        self._codec = codec

    @classmethod
    async def open(cls, js: JetStreamContext, codec: Codec, *, ttl: float) -> PushConfigs:
        """The configs in the ``hw_push`` bucket (created if missing; configs expire after ``ttl``)."""
        return cls(await ensure_bucket(js, subjects.PUSH_BUCKET, ttl=ttl), codec)

    async def put(self, tenant: str, config: PushConfig) -> PushConfig:
        """Store ``config`` (under a new id when it has none); a config with the same id is replaced.

        Raises:
            A2AError: the id cannot be a key (invalid params).
        """
        config = PushConfig(
            id=config.id or new_id(),
            task_id=config.task_id,
            url=config.url,
            token=config.token,
            authentication=config.authentication,
        )
        await self.kv.put(self._key(tenant, config.task_id, config.id), self._codec.encode(config))
        return config

    async def get(self, tenant: str, task_id: str, config_id: str) -> PushConfig | None:
        """One config of the task, or ``None``."""
        try:
            entry = await self.kv.get(self._key(tenant, task_id, config_id))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return self._codec.decode(entry.value or b"", PushConfig)

    async def list(self, tenant: str, task_id: str) -> list[PushConfig]:
        """Every config of the task."""
        found = await entries(self.kv, subjects.push_configs_of(tenant, task_id))
        return [self._codec.decode(entry.value or b"", PushConfig) for entry in found]

    async def delete(self, tenant: str, task_id: str, config_id: str) -> None:
        """Remove a config (a missing one is no error)."""
        key = self._key(tenant, task_id, config_id)
        try:
            await self.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return
        await self.kv.purge(key)

    @staticmethod
    def _key(tenant: str, task_id: str, config_id: str) -> str:
        try:
            return subjects.push_config_key(tenant, task_id, config_id)
        except ValueError as exc:
            raise invalid("id", str(exc)) from None


class WebhookPolicy:
    """Which webhook URLs the gateway calls: http(s) to public addresses, plus what the operator allows.

    Args:
        allowed: host names, addresses or networks (``10.0.0.0/8``) allowed although not public.
        timeout: seconds a host name may take to resolve.
    """

    def __init__(self, allowed: list[str], *, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._names = {entry.lower() for entry in allowed}
        self._networks: list[Network] = []
        for entry in allowed:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue  # a host name

    async def check(self, url: str) -> None:
        """Accept ``url`` or raise why not (it is resolved now; call again before each use).

        Raises:
            A2AError: invalid params, with the reason.
        """
        try:
            parsed = urllib.parse.urlsplit(url)
            port = parsed.port
        except ValueError:
            raise invalid("url", f"{url!r} is not a URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise invalid("url", f"{url!r} is not an http(s) URL with a host")
        host = parsed.hostname.lower()
        if host in self._names:
            return
        port = port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self._timeout):
                found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, ValueError):  # ValueError: no IDNA name (an empty label...)
            raise invalid("url", f"the host {host!r} does not resolve") from None
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if not self._public(address) and not any(address in net for net in self._networks):
                raise invalid(
                    "url",
                    f"{host!r} resolves to {address}, which is not a public address "
                    "(an operator can allow it: HIVEWIRE_GATEWAY_PUSH_ALLOWED_HOSTS)",
                )

    @staticmethod
    def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_global and not (address.is_multicast or address.is_reserved)
