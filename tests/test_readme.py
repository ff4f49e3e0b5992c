"""The README's example runs as written and prints what it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from agents import Mesh
from bus import EmbeddedNats
from tests.openai_server import OpenAIServer
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


async def test_the_readme_mcp_agent_calls_tools_directly_and_through_a_model(
    nats_server: EmbeddedNats, mesh: Mesh, tmp_path: Path, model_endpoint: OpenAIServer
) -> None:
    (code,) = re.findall(r"```python file=toolsmith.py\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (tmp_path / "toolsmith.py").write_text(code)
    assert "hivewire agent run toolsmith.py:agent" in README.read_text()
    servers = {
        "math": {
            "command": [sys.executable, "-m", "tests.mcp_server"],
            "cache": ["add"],
            "connect_timeout": 30,
        }
    }
    env = {
        "HIVEWIRE_MCP_SERVERS": json.dumps(servers),
        "HIVEWIRE_LLM_BASE_URL": model_endpoint.url,
        "HIVEWIRE_LLM_MODEL": "test-model",
        "PYTHONPATH": str(README.parent),
    }
    async with agent_process(nats_server.url, f"{tmp_path / 'toolsmith.py'}:agent", **env):
        caller = mesh.caller("readme", timeout=40)
        assert await caller.call("toolsmith", "add", [2, 3], int) == 5
        model_endpoint.call_tool("math__add", '{"a": 20, "b": 22}')
        answer = await caller.call("toolsmith", "ask", "What is 20 + 22?", str)
    assert answer.startswith("tool said: ")
    assert '"total": 42' in answer
