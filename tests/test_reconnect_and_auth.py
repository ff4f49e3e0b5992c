"""Connections: resuming after a server restart or pause, and credentials the server refuses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import AuthError, Bus, ConnectError, EmbeddedNats, Request, RequestTimeout
from tests.conftest import settings_for
from tests.peers import Ping, Pong
from tests.processes import paused


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A server this test alone may stop and start."""
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0) as server:
        yield server


async def wait_connected(*buses: Bus, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not all(bus.is_connected for bus in buses):
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_publish_and_request_resume_after_the_server_restarts(
    own_server: EmbeddedNats,
) -> None:
    settings = settings_for(own_server.url)
    caller = await Bus.connect(settings, name="caller")
    responder = await Bus.connect(settings, name="responder")
    received: list[str] = []

    async def echo(request: Request[Ping]) -> Pong:
        received.append(request.payload.text)
        return Pong(text=request.payload.text, pid=0)

    try:
        await responder.serve("test.restart", echo, Ping)
        assert (await caller.request("test.restart", Ping(text="before"), Pong)).text == "before"

        await asyncio.to_thread(own_server.restart)
        await wait_connected(caller, responder)

        # Subscriptions are restored on reconnect: the same service answers again.
        assert (await caller.request("test.restart", Ping(text="after"), Pong)).text == "after"
        await caller.publish("test.restart", Ping(text="published after"))
        async with asyncio.timeout(5):
            while "published after" not in received:
                await asyncio.sleep(0.02)
    finally:
        await caller.close()
        await responder.close()


async def test_a_server_that_pauses_past_a_flush_keeps_the_connection(
    own_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering for a while (paused, overloaded) makes a flush time out;
    the answer that comes late is taken quietly, not as an error that drops the connection."""
    bus = await Bus.connect(settings_for(own_server.url), name="paused")
    pid = own_server.pid
    assert pid is not None
    try:
        async with paused(pid):
            with pytest.raises(RequestTimeout):
                await bus.flush(timeout=1)
        await bus.flush(timeout=5)  # the late answer to the first flush came before this one's
        await asyncio.sleep(0.2)
        assert bus.is_connected
    finally:
        await bus.close()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(data_dir=tmp_path / "nats", port=0, user="hive", password="s3cret") as server:
        yield server


async def test_the_right_credentials_connect(guarded_server: EmbeddedNats) -> None:
    bus = await Bus.connect(settings_for(guarded_server.url, nats_user="hive", nats_password="s3cret"))
    assert bus.is_connected
    await bus.close()


@pytest.mark.parametrize(
    "credentials",
    [{"nats_user": "hive", "nats_password": "wrong"}, {}],
    ids=["wrong password", "no credentials"],
)
async def test_wrong_credentials_are_refused_with_a_clear_error(
    guarded_server: EmbeddedNats, credentials: dict[str, str]
) -> None:
    with pytest.raises(AuthError) as caught:
        await Bus.connect(settings_for(guarded_server.url, nats_max_reconnect_attempts=0, **credentials))
    assert "authorization" in str(caught.value).lower()
    assert caught.value.servers == [guarded_server.url]


async def test_an_unreachable_server_is_a_connect_error(own_server: EmbeddedNats) -> None:
    url = own_server.url
    own_server.stop()
    with pytest.raises(ConnectError) as caught:
        await Bus.connect(settings_for(url, nats_connect_timeout=1, nats_initial_connect_timeout=1))
    assert not isinstance(caught.value, AuthError)
    assert caught.value.servers == [url]
