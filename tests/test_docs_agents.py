"""The agent guide (docs/agents.md) runs as written: its agent, its client and its test."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from bus import EmbeddedNats
from tests.processes import AGENT_ENV, agent_process

GUIDE = Path(__file__).parent.parent / "docs" / "agents.md"


def _files() -> dict[str, str]:
    return dict(re.findall(r"```python file=(\S+)\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL))


def _expected_output(script: str) -> list[str]:
    """The guide writes each print's output as a trailing comment."""
    return [m.group(1) for m in re.finditer(r"print\(.*\)\s+# (.*)$", script, flags=re.MULTILINE)]


async def test_the_guides_agent_answers_the_guides_client(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    files = _files()
    assert set(files) == {"greeter.py", "ask_greeter.py", "test_greeter.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    async with agent_process(nats_server.url, "greeter:agent", PYTHONPATH=path):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "ask_greeter.py",
            cwd=tmp_path,
            env={**os.environ, **AGENT_ENV, "HIVEWIRE_NATS_URL": nats_server.url, "PYTHONPATH": path},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == _expected_output(files["ask_greeter.py"])


def test_the_guides_test_passes(tmp_path: Path) -> None:
    for name, text in _files().items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "test_greeter.py",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
