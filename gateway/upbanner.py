"""What ``hivewire up`` prints once the mesh is up: where to look, the key, how to ask, adding an agent."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from bus import local
from gateway import localmodel
from gateway.apps import App
from gateway.local import TENANT
from gateway.supervise import Child

__all__ = ["banner", "command", "watching"]


def banner(
    base: str,
    key: str,
    state: Path,
    seconds: float,
    apps: list[App],
    children: list[Child],
    model: localmodel.LocalModel | None = None,
    *,
    watch: str = "",
) -> None:
    counts: dict[str, int] = {}
    for child in children:
        counts[child.name] = counts.get(child.name, 0) + 1
    names = [
        "the model" if name == "model" else f"{name} (x{n})" if n > 1 else name
        for name, n in counts.items()
        if name != "gateway"
    ]
    example = apps[0].example
    # The first app's agent is the gateway's default; the research planner is named all the same.
    hivewire = command()
    asks = "\n".join(
        f"  {hivewire} ask "
        + ("" if n == 0 and app.entry[0] == "triage" else f"--agent {app.entry[0]} ")
        + f'"{app.example}"'
        for n, app in enumerate(apps)
    )
    # The state file is where commands look (by default .hivewire/up.json of the folder they run in).
    finds = "" if state.parent == local.DATA_DIR else f" with HIVEWIRE_DATA_DIR={state.parent}"
    running = ""
    if model is not None:
        running = f"\n  Model     {model.info.name} (llama.cpp, {model.tokens_per_second:.0f} tokens/s)"
    print(
        f"""
Hivewire is up ({seconds:.0f} s): NATS, {", ".join(names)} and the gateway, one process each.

  Console   {base}/   (sign in with the key below: chat, hand-offs, tasks, traces, usage)
  Gateway   {base}   (API docs: {base}/docs)
  API key   {key}   (tenant {TENANT!r}; also in {state}){running}
{watch}
Ask from this machine:
{asks}

or over HTTP:
  curl -s -XPOST {base}/v1/conversations -H "Authorization: Bearer {key}"
  curl -N {base}/v1/conversations/<id>/messages -H "Authorization: Bearer {key}" \\
       -H "Content-Type: application/json" -H "Accept: text/event-stream" \\
       -d '{{"text": "{example}"}}'

Add an agent (see the README); every hivewire command run here{finds} finds this mesh:
  {hivewire} agent run greeter.py:agent

Ctrl-C stops everything."""
    )


def command(script: str | None = None, cwd: Path | None = None) -> str:
    """How to run ``hivewire`` from the folder ``up`` was started in: the executable it was started as
    (``script``, by default ``sys.argv[0]``), relative to that folder when it is inside it
    (``.venv/bin/hivewire`` on a fresh clone), plain ``hivewire`` when that is what the shell finds."""
    started = Path(script if script is not None else sys.argv[0])
    if started.name != "hivewire":  # run as `python -m ...` or in-process: the script beside this Python
        started = Path(sys.executable).with_name("hivewire")
    here = Path(os.path.abspath(cwd or Path.cwd()))
    started = Path(os.path.abspath(here / started))
    found = shutil.which("hivewire")
    if found is not None and Path(os.path.abspath(found)) == started:
        return "hivewire"
    try:
        return shlex.quote(str(started.relative_to(here)))
    except ValueError:
        return shlex.quote(str(started))


def watching(base: str, children: list[Child]) -> str:
    """Where to see the mesh at work: every process's /metrics, and where a turn's spans go."""
    served = [(child.name, child.metrics) for child in children if child.metrics]
    metrics = f"  Metrics   gateway   {base}/metrics\n" + "".join(
        f"            {name.ljust(9)} {url}\n" for name, url in served
    )
    exporters = os.environ.get("OTEL_TRACES_EXPORTER") or "hivewire"
    if "hivewire" in exporters:
        traces = (
            "  Traces    every turn's spans are kept on the bus: the console's Traces page, or\n"
            f"            {command()} traces <trace id>   (`hivewire ask` prints a turn's id)\n"
        )
    else:
        traces = f"  Traces    sent as OTEL_TRACES_EXPORTER={exporters} says (not kept on the bus)\n"
    return metrics + traces
