"""The Bus: one typed, traced NATS connection for publishing, requesting, streaming and serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import nats.aio.client
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from opentelemetry import metrics, trace

from bus.backoff import Backoff
from bus.codec import Codec
from bus.connection import Connection
from bus.envelope import Envelope
from bus.errors import (
    AuthError,
    BusClosed,
    ConnectError,
    Disconnected,
    NotConnected,
    PayloadTooLarge,
    RequestTimeout,
)
from bus.frames import read_reply
from bus.jetstream_fast import FastJetStream
from bus.replies import Replies
from bus.service import Request, Service
from bus.settings import NatsSettings
from bus.stream import ReplyStream
from bus.tracing import BusTelemetry

__all__ = ["Bus", "Listening"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")


class Bus:
    """A connection to the mesh. Build it with :meth:`connect`; close it with :meth:`close`.

    Every operation takes typed payloads (msgspec structs) and an optional
    :class:`~bus.envelope.Envelope` with the transport metadata (tenant,
    deadline, message id, hops), which travels in NATS headers.
    """

    def __init__(self, nc: NATS, settings: NatsSettings, telemetry: BusTelemetry) -> None:
        """Wrap an already connected client; prefer :meth:`connect`."""
        self._nc = nc
        self._settings = settings
        self._telemetry = telemetry
        self.codec = Codec()
        self._streams: dict[int, ReplyStream[Any]] = {}
        self._services: set[Service[Any]] = set()
        self._replies = Replies(nc)
        self._on_reconnected: list[Callable[[], None]] = []
        self._stored: FastJetStream | None = None
        self._disconnected_at: float | None = None
        self._reconnected_at: float | None = None

    @classmethod
    async def connect(
        cls,
        settings: NatsSettings,
        *,
        name: str = "hivewire",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> Bus:
        """Connect to the servers in ``settings``; reconnects happen by themselves afterwards.

        Raises:
            AuthError: the server refused the credentials.
            ConnectError: no server could be reached.
        """
        telemetry = BusTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
        nc = Connection()
        bus = cls(nc, settings, telemetry)
        servers = settings.servers()
        refused: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, nats.errors.SlowConsumerError):
                bus._on_slow_consumer(exc)
            elif _is_auth_error(exc):
                log.error("NATS refused the credentials: %s", exc)
                if not refused.done():
                    refused.set_result(exc)
            else:
                log.warning("NATS connection error: %s", exc)

        async def on_disconnected() -> None:
            if not (nc.is_closed or nc.is_draining):
                bus._disconnected_at = time.monotonic()
                log.warning("disconnected from NATS; reconnecting")

        async def on_reconnected() -> None:
            bus._reconnected_at = time.monotonic()
            log.info("reconnected to NATS at %s", bus.connected_url)
            for listener in list(bus._on_reconnected):
                listener()

        # nats-py retries the first connection as often as later reconnections
        # (forever by default, even when the credentials are refused), so the
        # first one is bounded here: a process must fail clearly at start.
        connecting = asyncio.ensure_future(
            nc.connect(
                servers=servers,
                name=name,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                connect_timeout=settings.nats_connect_timeout,  # type: ignore[arg-type]
                reconnect_time_wait=settings.nats_reconnect_wait,  # type: ignore[arg-type]
                reconnect_to_server_handler=Backoff(
                    initial=settings.nats_reconnect_wait, maximum=settings.nats_reconnect_max_wait
                ),
                max_reconnect_attempts=settings.nats_max_reconnect_attempts,
                user=settings.nats_user,
                password=_secret(settings.nats_password),
                token=_secret(settings.nats_token),
                user_credentials=_path(settings.nats_creds_file),
                tls=settings.tls_context(),
            )
        )
        try:
            await asyncio.wait(
                {connecting, cast("asyncio.Future[None]", refused)},
                timeout=settings.nats_initial_connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:  # Ctrl-C while waiting: the connecting task must stop too
            await _abandon(nc, connecting)
            raise
        if not connecting.done() or connecting.exception() is not None:
            failure = await _abandon(nc, connecting)
            if refused.done() or (failure is not None and _is_auth_error(failure)):
                raise AuthError(servers, str(refused.result() if refused.done() else failure))
            if failure is None:
                reason = f"no connection within {settings.nats_initial_connect_timeout}s"
            else:
                reason = f"{type(failure).__name__}: {failure}".rstrip(": ")
            raise ConnectError(servers, reason) from failure
        refused.cancel()
        if nc.connected_url is not None:
            telemetry.server_address = nc.connected_url.hostname
            telemetry.server_port = nc.connected_url.port
        return bus

    @property
    def settings(self) -> NatsSettings:
        """The settings this bus was connected with."""
        return self._settings

    @property
    def telemetry(self) -> BusTelemetry:
        """The tracer and instruments of this connection."""
        return self._telemetry

    @property
    def is_connected(self) -> bool:
        """True while the connection to a server is up (false while reconnecting)."""
        return self._nc.is_connected

    @property
    def disconnected_at(self) -> float | None:
        """When (``time.monotonic()``) the connection was last lost; ``None`` if it never was."""
        return self._disconnected_at

    def recovering(self, within: float) -> bool:
        """True while the connection is down, and for ``within`` seconds after it came back.

        A restarted server has lost what it kept in memory (the registry): for a
        while after a reconnect the mesh is still announcing itself again.
        """
        if self._disconnected_at is None:
            return False
        if not self._nc.is_connected:
            return True
        back = self._reconnected_at
        return back is not None and back >= self._disconnected_at and time.monotonic() - back < within

    def on_reconnected(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` each time the connection comes back after a loss; return its remover.

        It runs in the event loop and must not block (start a task for any I/O):
        the place to announce again what a restarted server may have lost.
        """
        self._on_reconnected.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._on_reconnected.remove(listener)

        return remove

    async def until_connected(self) -> None:
        """Return once the connection is up: at once, or when it comes back (it may never, if closed)."""
        if self._nc.is_connected:
            return
        back: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not back.done():
                back.set_result(None)

        remove = self.on_reconnected(wake)
        try:
            await back
        finally:
            remove()

    @property
    def max_payload(self) -> int:
        """The largest payload the connected server accepts, in bytes."""
        return self._nc.max_payload

    @property
    def connected_url(self) -> str | None:
        """The URL of the server currently connected to."""
        url = self._nc.connected_url
        return None if url is None else f"{url.scheme}://{url.hostname}:{url.port}"

    def jetstream(self) -> JetStreamContext:
        """The JetStream context of this connection, for the durable parts of the mesh."""
        return self._nc.jetstream(timeout=self._settings.nats_jetstream_timeout)

    async def close(self) -> None:
        """Stop serving, let in-flight handlers finish, flush what is buffered and disconnect."""
        if self._nc.is_closed:
            return
        for service in list(self._services):
            await service.stop()
        # A connection that is reconnecting (its server went away) cannot drain: just close it.
        with contextlib.suppress(
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
            nats.errors.ConnectionReconnectingError,
        ):
            await self._nc.drain()
        if not self._nc.is_closed:
            await self._nc.close()

    async def publish(self, subject: str, payload: object, *, envelope: Envelope | None = None) -> None:
        """Send ``payload`` to every subscriber of ``subject`` without waiting for anyone.

        Raises:
            PayloadTooLarge: the encoded payload exceeds the server's limit.
            Disconnected: NATS is unreachable and the reconnect buffer is full.
            BusClosed: the bus was closed.
        """
        env = envelope if envelope is not None else Envelope()
        data = self._encode(payload)
        headers = env.to_headers()
        with self._telemetry.send_span(
            "publish", subject, headers, message_id=env.message_id, size=len(data)
        ):
            await self._send(subject, data, headers)

    async def publish_stored(
        self, subject: str, payload: object, *, envelope: Envelope | None = None
    ) -> None:
        """Send ``payload`` as :meth:`publish` does, and wait until the stream that keeps ``subject``
        has stored it (JetStream's acknowledgement).

        For a message that must not be lost when the server restarts as it is
        sent, where a plain publish can vanish with the connection. The
        envelope's message id is the ``Nats-Msg-Id``: sending again after a
        failure stores it once (within the stream's de-duplication window).

        Raises:
            PayloadTooLarge: the encoded payload exceeds the server's limit.
            nats.errors.TimeoutError: no acknowledgement within the JetStream timeout.
            nats.js.errors.NoStreamResponseError: no stream keeps ``subject`` (or none answers yet).
        """
        env = envelope if envelope is not None else Envelope()
        data = self._encode(payload)
        headers = env.to_headers()
        if self._stored is None:
            self._stored = FastJetStream(self.jetstream())
        with self._telemetry.send_span(
            "publish", subject, headers, message_id=env.message_id, size=len(data)
        ):
            await self._stored.publish(subject, data, headers=headers)

    async def listen(self, subject: str, on_message: Callable[[Msg], None]) -> Listening:
        """Hand each message on ``subject`` to ``on_message`` as it arrives, until closed.

        A plain subscription (no queue group, no replies): the cheapest way to
        hear of something, such as a task's end among its conversation's
        events. ``on_message`` runs in the event loop and must not block. The
        subscription goes out ahead of anything published after this returns.

        Raises:
            BusClosed: the bus was closed.
        """
        if self._nc.is_closed:
            raise BusClosed()
        if not isinstance(self._nc, Connection):

            async def relay(msg: Msg) -> None:
                on_message(msg)

            return Listening(self._nc, await self._nc.subscribe(subject, cb=relay))
        sub = await self._nc.subscribe(subject)
        self._nc.deliver_directly(sub._id, deliver=on_message)
        return Listening(self._nc, sub)

    async def publish_bytes(self, subject: str, data: bytes) -> None:
        """Send ``data`` as it is, without an envelope or a span (data about the mesh, such as
        finished spans, rather than a message in it).

        Raises:
            Disconnected: NATS is unreachable and the reconnect buffer is full.
            BusClosed: the bus was closed.
        """
        try:
            await self._nc.publish(subject, data)
        except nats.errors.Error as exc:
            raise self._sending_error(exc, subject, data) from None

    async def flush(self, timeout: int = 5) -> None:
        """Wait until the server has everything sent so far.

        Raises:
            RequestTimeout: the server did not answer within ``timeout`` seconds.
        """
        try:
            await self._nc.flush(timeout)
        except nats.errors.TimeoutError:
            raise RequestTimeout("flush", timeout) from None

    async def request(
        self,
        subject: str,
        payload: object,
        reply_type: type[R],
        *,
        envelope: Envelope | None = None,
        timeout: float | None = None,
    ) -> R:
        """Send ``payload`` to one responder on ``subject`` and return its typed reply.

        The deadline is the sooner of ``timeout`` (default: the configured request
        timeout) and the envelope's own deadline; it travels with the request so
        the responder knows how long it has.

        Raises:
            RequestTimeout: no reply before the deadline.
            NoResponders: nobody serves ``subject``.
            RemoteError: the responder replied with an error (code and message).
            MalformedPayload: the reply does not decode as ``reply_type``.
            PayloadTooLarge, Disconnected, BusClosed: as for :meth:`publish`.
        """
        env, wait = self._deadline(envelope, timeout)
        data = self._encode(payload)
        headers = env.to_headers()
        if not self._telemetry.tracing:
            return await self._request(subject, data, headers, reply_type, wait)
        with self._telemetry.send_span(
            "request", subject, headers, message_id=env.message_id, size=len(data)
        ):
            return await self._request(subject, data, headers, reply_type, wait)

    async def _request(
        self, subject: str, data: bytes, headers: dict[str, str], reply_type: type[R], wait: float
    ) -> R:
        if wait <= 0:
            raise RequestTimeout(subject, 0.0)
        try:
            msg = await self._replies.request(subject, data, headers, wait)
        except nats.errors.Error as exc:
            raise self._sending_error(exc, subject, data) from None
        if msg is None:
            if not self._nc.is_connected:
                raise NotConnected(subject, wait)
            raise RequestTimeout(subject, wait)
        if not msg.headers:  # a plain reply: nothing to check but its type
            return self.codec.decode(msg.data, reply_type)
        # A "no responders" status reply is raised as NoResponders here.
        return read_reply(msg, subject, reply_type, self.codec, wait)

    def stream(
        self,
        subject: str,
        payload: object,
        chunk_type: type[C],
        *,
        envelope: Envelope | None = None,
        timeout: float | None = None,
        buffer: int = 1024,
    ) -> ReplyStream[C]:
        """Send ``payload`` to one streaming responder and iterate over the chunks it sends.

        Use it as ``async with bus.stream(...) as chunks: async for chunk in chunks``.
        The stream ends when the responder finishes; it raises :class:`RemoteError`
        if the responder fails, :class:`RequestTimeout` when the deadline passes,
        :class:`NoResponders` if nobody serves ``subject``, and
        :class:`StreamBroken` if chunks were lost because more than ``buffer``
        of them were waiting to be read.
        """
        env, wait = self._deadline(envelope, timeout)
        data = self._encode(payload)
        return ReplyStream(
            nc=self._nc,
            telemetry=self._telemetry,
            codec=self.codec,
            registry=self._streams,
            subject=subject,
            data=data,
            envelope=env,
            chunk_type=chunk_type,
            deadline=time.monotonic() + wait,
            buffer=buffer,
        )

    async def serve(
        self,
        subject: str,
        handler: Callable[[Request[T]], Awaitable[object]],
        request_type: type[T],
        *,
        queue: str | None = None,
        max_concurrency: int = 256,
    ) -> Service[T]:
        """Handle requests on ``subject`` with ``handler``; its return value is the reply.

        Replicas that pass the same ``queue`` share the requests, each handled once.
        A handler that raises :class:`RemoteError` replies with its code; any other
        exception replies ``internal``; a request that does not decode as
        ``request_type`` replies ``bad_request``. The handler is cancelled when the
        request's deadline passes. The service keeps serving after every failure.
        """
        return await self._start(subject, handler, request_type, queue, max_concurrency, False)

    async def serve_stream(
        self,
        subject: str,
        handler: Callable[[Request[T]], AsyncIterator[object]],
        request_type: type[T],
        *,
        queue: str | None = None,
        max_concurrency: int = 256,
    ) -> Service[T]:
        """Handle streaming requests on ``subject``: each item ``handler`` yields is one chunk.

        Failures behave as in :meth:`serve`, sent as the stream's final frame.
        """
        return await self._start(subject, handler, request_type, queue, max_concurrency, True)

    async def _start(
        self,
        subject: str,
        handler: Callable[[Request[T]], Any],
        request_type: type[T],
        queue: str | None,
        max_concurrency: int,
        streaming: bool,
    ) -> Service[T]:
        if self._nc.is_closed:
            raise BusClosed()
        service: Service[T] = Service(
            nc=self._nc,
            telemetry=self._telemetry,
            codec=self.codec,
            subject=subject,
            handler=handler,
            request_type=request_type,
            queue=queue,
            max_concurrency=max_concurrency,
            streaming=streaming,
            on_stop=self._services.discard,
            direct=self._nc if isinstance(self._nc, Connection) else None,
        )
        await service.start()
        self._services.add(service)
        return service

    def _deadline(self, envelope: Envelope | None, timeout: float | None) -> tuple[Envelope, float]:
        now = time.monotonic()
        wait = self._settings.nats_request_timeout if timeout is None else timeout
        if envelope is None:
            return Envelope(deadline=now + wait), wait
        remaining = envelope.remaining(now)
        if remaining is not None and remaining <= wait:
            return envelope, remaining
        return msgspec.structs.replace(envelope, deadline=now + wait), wait

    def _encode(self, payload: object) -> bytes:
        data = self.codec.encode(payload)
        limit = self._nc.max_payload
        if limit and len(data) > limit:
            raise PayloadTooLarge(len(data), limit)
        return data

    async def _send(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        try:
            await self._nc.publish(subject, data, headers=headers)
        except nats.errors.Error as exc:
            raise self._sending_error(exc, subject, data) from None

    def _sending_error(self, exc: nats.errors.Error, subject: str, data: bytes) -> Exception:
        """The bus's error for what nats-py raised while sending; others unchanged."""
        if isinstance(exc, nats.errors.ConnectionClosedError):
            return BusClosed()
        if isinstance(exc, nats.errors.OutboundBufferLimitError):
            return Disconnected(subject)
        if isinstance(exc, nats.errors.MaxPayloadError):
            return PayloadTooLarge(len(data), self._nc.max_payload)
        return exc

    def _on_slow_consumer(self, exc: nats.errors.SlowConsumerError) -> None:
        stream = self._streams.get(exc.sid)
        if stream is not None:
            stream.overflowed()
            return
        self._telemetry.record_drop(exc.subject, "slow_consumer")
        log.error("dropped a message on %s: the subscriber is too slow", exc.subject)


class Listening:
    """A subscription made by :meth:`Bus.listen`; :meth:`close` it when done."""

    def __init__(self, nc: NATS, sub: Subscription) -> None:
        self._nc = nc
        self._sub = sub

    async def close(self) -> None:
        """Stop listening (messages already in flight are dropped)."""
        if isinstance(self._nc, Connection):
            self._nc.stop_delivering(self._sub._id)
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


async def _abandon(nc: NATS, connecting: asyncio.Future[None]) -> BaseException | None:
    """Stop a first connection that failed or took too long; return its error."""
    while not connecting.done():
        connecting.cancel()
        # On Python 3.11 asyncio.wait_for (which nats-py connects with) can swallow a cancellation
        # that meets its timeout: the retry loop would go on forever, so it is asked again.
        await asyncio.wait({connecting}, timeout=0.5)
    failure = None if connecting.cancelled() else connecting.exception()
    with contextlib.suppress(Exception):
        await nc.close()
    return failure


def _is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, nats.errors.AuthorizationError):
        return True
    return "authorization violation" in str(exc).lower()
