"""The shell examples of README.md and docs/*.md, turned into one bash script per document.

A reader copies a document's examples in order, in one terminal: so does the
script. Commands that run until stopped (``hivewire agent run``, ``hivewire
gateway``) go to the background, and the script waits until they are ready
before the next line, as a reader would; they are stopped when it ends. The
examples' ``localhost:8080`` is the test mesh's gateway (``MESH_URL``, with
``MESH_KEY``); ``curl`` fails on an HTTP error (a reader would see one), and
every line must succeed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SKIPPED", "Block", "blocks", "script"]

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Examples not run, each with the reason (matched on the block's first command).
SKIPPED = {
    "bash .ci/install && .venv/bin/hivewire up": "installs the environment and starts a mesh: "
    "the test's own `hivewire up` is this command",
    ".venv/bin/hivewire up --model smollm2": "runs a language model with llama.cpp "
    "(tests/test_llm_llamacpp.py covers the model server)",
    ".venv/bin/hivewire up --app research": "a second mesh, with the research swarm: tests/test_up.py "
    "starts it and asks its planner exactly this",
    ".venv/bin/hivewire agent run knowledge.agent:knowledge": "a second knowledge agent on the same "
    "embedded Chroma folder would not see the first one's writes (replicas need a Chroma server)",
    "# Traces and metrics to a local collector": "exports to an OpenTelemetry collector, an external service",
    """HIVEWIRE_MCP_SERVERS='{"files": """: "an agent whose file is not shown whole (researcher.py), "
    "using MCP servers the reader runs (tests/test_mcp_tools.py runs MCP servers)",
}

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?:sh|bash|console|shell)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
_PYTHON_FILE = re.compile(r"^```python file=(?P<name>\S+)\n(?P<body>.*?)^```", re.M | re.S)
_ASSIGNMENT = r"""\w+=(?:'[^']*'|"[^"]*"|\S+)\s+"""  # VAR=value, or VAR='a quoted value'
_LONG_RUNNING = re.compile(
    rf"^(?P<command>(?:{_ASSIGNMENT})*\S*hivewire (?:agent run (?P<target>\S+)|gateway)\b[^#]*?)\s*(?:#.*)?$"
)


@dataclass(frozen=True)
class Block:
    """One shell example: where it is and its commands (continuation lines joined)."""

    document: Path
    line: int
    commands: list[str]

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def skipped(self) -> str | None:
        first = self.commands[0] if self.commands else ""
        return next((why for start, why in SKIPPED.items() if first.startswith(start)), None)


def blocks(document: Path) -> list[Block]:
    """The document's shell examples that run ``hivewire`` or ``curl``."""
    text = document.read_text()
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match.group("indent"))
        lines = [line[indent:] for line in match.group("body").splitlines()]
        if any(line.startswith("$ ") for line in lines):  # a console session: the prompts' lines
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands = " \n".join(lines).replace("\\ \n", " ").split(" \n")
        commands = [command.strip() for command in commands if command.strip()]
        if any(re.search(r"\b(hivewire|curl)\b", command) for command in commands):
            found.append(Block(document, text[: match.start()].count("\n") + 2, commands))
    return found


def python_files(document: Path) -> dict[str, str]:
    """The files a document shows in full (```python file=NAME), which its examples then use."""
    return {m.group("name"): m.group("body") for m in _PYTHON_FILE.finditer(document.read_text())}


_PRELUDE = r"""set -euo pipefail
# A reader sees an HTTP error: so does the script.
curl() { command curl --fail-with-body --silent --show-error --max-time 60 "$@"; }
command -v jq >/dev/null || jq() {  # `jq -r .field`, where jq is not installed
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1].lstrip(".")])' "${@: -1}"
}
replicas() {  # NAME: its live replicas, as the mesh's gateway lists them (a second old at most)
  command curl -sf "$MESH_URL/v1/agents" -H "Authorization: Bearer $MESH_KEY" | python3 -c \
    'import json, sys; print(sum(a["replicas"] for a in json.load(sys.stdin) if a["name"] == sys.argv[1]))' \
    "$1"
}
wait_agent() {  # NAME BEFORE: until the agent has more replicas than before
  local until=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$until" ]; do [ "$(replicas "$1")" -gt "$2" ] && return 0; sleep 0.2; done
  echo "agent $1 did not join" >&2; return 1
}
wait_http() {
  local until=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$until" ]; do command curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 is not ready" >&2; return 1
}
trap 'for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done; wait || true' EXIT
"""


def script(examples: list[Block], *, gateway_port: int, standalone_port: int) -> str:
    """One bash script running the examples in order (see the module's docstring)."""
    lines = [_PRELUDE]
    for block in examples:
        lines.append(f'echo "### {block.where} (at $SECONDS s)" >&2')
        for command in block.commands:
            command = re.sub(r"(localhost|127\.0\.0\.1):8080", f"127.0.0.1:{gateway_port}", command)
            long_running = _LONG_RUNNING.match(command)
            if long_running is None:
                lines.append(command)
                continue
            target = long_running.group("target")
            if target is None:  # a gateway of its own, beside the mesh's
                lines.append(f"HIVEWIRE_GATEWAY_PORT={standalone_port} {long_running.group('command')} &")
                lines.append(f"wait_http http://127.0.0.1:{standalone_port}/readyz")
                continue
            module, attribute = target.split(":")
            name = Path(module).stem if attribute == "agent" else attribute
            lines.append(f"before=$(replicas {name}); {long_running.group('command')} &")
            lines.append(f'wait_agent {name} "$before"')
    return "\n".join(lines) + "\n"
