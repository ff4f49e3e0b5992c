"""A real redis-server as a child process, so tests exercise the same Redis the mesh runs against."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bus.children import die_with_parent

__all__ = ["RedisServer"]

BINARY = Path("/usr/bin/redis-server")
_HOST = "127.0.0.1"
_READY_TIMEOUT = 10.0
# A port picked free can be taken by someone else before redis binds it: pick again a few times.
_PORT_ATTEMPTS = 3


class RedisServer:
    """A throwaway, in-memory redis-server on a loopback port.

    Nothing is persisted: :meth:`stop` loses the data, and :meth:`restart` comes back
    empty on the same port, which is how tests simulate Redis going away and returning.
    With ``persist``, an append-only file keeps the data across stops and starts (as a
    production Redis would), until the block of ``with`` ends.

    Args:
        port: the port to listen on, or 0 for a free one (kept across restarts).
        persist: keep the data across restarts.
    """

    def __init__(self, *, port: int = 0, persist: bool = False) -> None:
        self.port = port
        self._persist = persist
        self._fixed_port = port != 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The client URL, e.g. ``redis://127.0.0.1:6379/0``."""
        if not self.port:
            raise RuntimeError("the Redis server has not been started")
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers PING.

        Raises:
            RuntimeError: it exited or did not answer within 10 s; the message has its output.
        """
        if self.running:
            return
        if not BINARY.is_file():
            raise RuntimeError(f"{BINARY} not found; install the redis-server package")
        attempts = 1 if self._fixed_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if not self._fixed_port:
                self.port = _free_port()
            try:
                self._spawn_and_wait()
                # From now on the port is this server's: restarts must come back on it.
                self._fixed_port = True
                return
            except RuntimeError:
                if attempt == attempts:
                    raise

    def stop(self) -> None:
        """SIGTERM the server and wait for it to exit (SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not self._persist:
            self._discard_data()

    def _discard_data(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def restart(self) -> None:
        """Stop if running, then start again, empty, on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._discard_data()

    def _spawn_and_wait(self) -> None:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="hivewire-redis-")
        workdir = Path(self._dir.name)
        log_path = workdir / "redis.log"
        command = [
            str(BINARY),
            "--port", str(self.port),
            "--bind", _HOST,
            "--save", "",
            "--appendonly", "yes" if self._persist else "no",
            "--daemonize", "no",
            "--dir", str(workdir),
            "--loglevel", "warning",
            "--logfile", "",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Linux ties the death signal to the forking thread, so only from the main thread.
                preexec_fn=die_with_parent(),
            )
        try:
            self._wait_ready(log_path)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, log_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server on port {self.port} exited with code {self._process.returncode}: "
                    f"{_read(log_path)}"
                )
            if _answers_ping(self.port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING within {_READY_TIMEOUT}s: "
                    f"{_read(log_path)}"
                )
            time.sleep(0.02)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    # No retries: the caller polls, and redis-py would otherwise back off for seconds per attempt.
    client = redis.Redis(
        host=_HOST, port=port, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip() or "(no output)"
    except OSError:
        return "(no output)"
