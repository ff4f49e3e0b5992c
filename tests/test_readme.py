"""The README's example runs as written and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from agents import Mesh
from bus import EmbeddedNats
from tests.processes import agent_process

README = Path(__file__).parent.parent / "README.md"


def test_the_bus_example_in_the_readme_runs(tmp_path: Path) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HELLO, MESH"


def test_the_readme_names_the_commands_ci_runs() -> None:
    text = README.read_text()
    assert "bash .ci/install && .venv/bin/hivewire up" in text
    assert "bash .ci/run" in text


async def test_the_readme_agent_joins_a_running_mesh_and_answers(
    nats_server: EmbeddedNats, mesh: Mesh, tmp_path: Path
) -> None:
    (code,) = re.findall(r"```python file=greeter.py\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (tmp_path / "greeter.py").write_text(code)
    assert "hivewire agent run greeter.py:agent" in README.read_text()
    async with agent_process(nats_server.url, f"{tmp_path / 'greeter.py'}:agent"):
        live = await mesh.registry.get("greeter")
        assert live is not None
        assert [skill.id for skill in live.card.skills] == ["greet"]
        assert await mesh.caller("readme").call("greeter", "greet", "Ada", str) == "Hello, Ada!"
