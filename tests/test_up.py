"""The main job: `hivewire up` starts the whole mesh; the README's request gets a streamed answer;
a new agent joins the running mesh and is callable through the gateway; Ctrl-C stops everything.

The mesh runs both applications (`--app desk --app research`, the desk the gateway's default), so
the research swarm is checked the same way: `hivewire ask --agent planner` streams a cited report."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gateway_server import free_port
from tests.processes import agent_process
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(240)


@dataclass
class RunningMesh:
    process: asyncio.subprocess.Process
    folder: Path
    url: str
    key: str
    nats_url: str
    output: list[str]


async def _hivewire(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", *args,
        cwd=folder, env=env or os.environ.copy(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def running(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> AsyncIterator[RunningMesh]:
    folder = tmp_path_factory.mktemp("up")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HIVEWIRE_", "OTEL_"))  # a fresh clone's defaults
    }
    env.update(
        HIVEWIRE_GATEWAY_PORT=str(free_port()),
        HIVEWIRE_NATS_EMBEDDED_PORT="0",
        HIVEWIRE_REDIS_URL=redis_server.url,
        PYTHONPATH=str(ROOT),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "up", "--app", "desk", "--app", "research", "--log-level", "INFO",
        cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    try:
        while not any("Ctrl-C stops everything" in line for line in output):
            line = (await asyncio.wait_for(process.stdout.readline(), 180)).decode()
            assert line, "hivewire up exited:\n" + "".join(output)
            output.append(line)
        text = "".join(output)
        url = re.search(r"Gateway\s+(http://\S+)", text)
        key = re.search(r"API key\s+(hw_\S+)", text)
        nats = re.search(r"NATS\s+(nats://\S+)", text)
        assert url, text
        assert key, text
        assert nats, text
        yield RunningMesh(process, folder, url.group(1), key.group(1), nats.group(1), output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_up_reports_what_it_started_and_how_to_ask(running: RunningMesh) -> None:
    text = "".join(running.output)
    assert "OFFLINE MODE" in text
    assert "(configured)" in next(line for line in running.output if line.startswith("Redis"))
    assert "Knowledge 20 articles" in text
    assert 'hivewire ask "How do I reset my password?"' in text
    assert f"Console   {running.url}/" in text


async def test_the_readme_example_request_gets_a_streamed_cited_answer(running: RunningMesh) -> None:
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"\.venv/bin/hivewire ask \"([^\"]+)\"", readme)
    assert example, "the README shows a `hivewire ask` example"
    code, out, err = await _hivewire(running.folder, "ask", example.group(1))
    assert code == 0, err
    assert "offline mode" in out
    assert "account-password-reset.md" in out
    assert "Forgot password?" in out
    assert "intent: account" in err


async def test_every_process_is_watched_its_logs_named_its_metrics_apart_its_turns_traced(
    running: RunningMesh,
) -> None:
    text = "".join(running.output)
    # The children's log lines, at the level asked for, each marked with its process.
    assert any(line.startswith("triage    | ") and "joined the mesh" in line for line in running.output)
    assert any(line.startswith("gateway   | ") and "gateway connected" in line for line in running.output)
    # Every agent process serves /metrics on a port of its own, listed in the banner.
    listed = re.findall(r"^\s+(?:Metrics\s+)?(\w+)\s+(http://\S+/metrics)$", text, re.M)
    served = dict(listed)
    assert served["gateway"] == running.url + "/metrics"
    assert [name for name, _ in listed].count("analyst") == 2
    assert {"knowledge", "triage", "answer", "planner", "analyst", "writer"} <= set(served)
    assert len({url for _, url in listed}) == len(listed) == 8  # no port twice
    assert "hivewire traces <trace id>" in text

    code, out, err = await _hivewire(running.folder, "ask", "How do I reset my password?")
    assert code == 0, err
    trace_id = re.search(r"\[trace ([0-9a-f]{32}): see it with `hivewire traces \1`\]", err)
    assert trace_id, err
    async with httpx.AsyncClient(timeout=10) as client:
        triage = (await client.get(served["triage"])).text
        gateway = (await client.get(served["gateway"])).text
    assert re.search(r'hivewire_desk_turns_total\{.*intent="account".*\} [1-9]', triage), triage
    assert "hivewire_tasks_consumer_lag{" in triage
    assert "hivewire_turn_time_to_first_token_seconds_count" in gateway
    # The turn's spans, from the span store, as a waterfall: the gateway, triage, knowledge, answer.
    root = "POST /v1/conversations/{cid}/messages"  # the gateway's span, ended after the stream ended
    for _ in range(50):  # each process sends its spans every half second
        code, out, err = await _hivewire(running.folder, "traces", trace_id.group(1))
        if (
            code == 0
            and root in out
            and all(f"hivewire-agent-{a}" in out for a in ("triage", "knowledge", "answer"))
        ):
            break
        await asyncio.sleep(0.2)
    assert code == 0, err
    assert out.startswith(f"trace {trace_id.group(1)}: ")
    assert root in out.splitlines()[2]  # the root, first
    assert all(f"hivewire-agent-{a}" in out for a in ("triage", "knowledge", "answer")), out


async def test_the_research_swarm_streams_a_cited_offline_report(running: RunningMesh) -> None:
    text = "".join(running.output)
    assert "Knowledge 8 research documents" in text
    assert "planner, analyst (x2), writer" in text
    example = re.search(r'hivewire ask --agent planner "([^"]+)"', text)
    assert example, text
    code, out, err = await _hivewire(running.folder, "ask", "--agent", "planner", example.group(1))
    assert code == 0, err
    assert out.startswith("# Research report: Assess the market for heat pumps in the Nordics")
    assert "Offline mode: no language model is configured" in out
    assert "Revenue was EUR 1,840 million in 2024" in out  # the table's figures, cited
    assert "(heat-pumps-nordics.md)" in out  # the corpus, in the numbered sources
    assert "8 of 8 questions answered by 2 analysts" in out  # the footer
    assert "[8 questions for the analysts]" in err  # the planner's progress, on stderr


async def test_another_tenant_sees_none_of_the_local_knowledge(running: RunningMesh) -> None:
    env = {**os.environ, "HIVEWIRE_NATS_URL": running.nats_url}
    code, out, err = await _hivewire(running.folder, "keys", "create", "--tenant", "elsewhere", env=env)
    assert code == 0, err
    query = {"input": {"query": "How do I reset my password?"}}
    found = {}
    for tenant, key in (("local", running.key), ("elsewhere", out.strip())):
        async with httpx.AsyncClient(
            base_url=running.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            reply = await client.post("/v1/agents/knowledge/skills/search", json=query)
        assert reply.status_code == 200, reply.text
        found[tenant] = reply.json()["output"]["passages"]
    assert found["local"]
    assert found["elsewhere"] == []


async def test_an_unhappy_unresolved_turn_is_flagged_for_a_human(running: RunningMesh) -> None:
    headers = {"Authorization": f"Bearer {running.key}"}
    async with httpx.AsyncClient(base_url=running.url, headers=headers, timeout=30) as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        turn = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={
                "text": "I'm furious: the courier lost my Orbitly mug order again and nobody answers. Fed up!"
            },
        )
    assert turn.status_code == 200, turn.text
    desk = turn.json()["message"]["metadata"]["hivewire.desk"]
    assert desk["sentiment"] == "negative"
    assert desk["handoff"] is True
    assert "passed this conversation to a person" in turn.json()["text"]


async def test_a_new_agent_joins_the_running_mesh_and_is_callable_through_the_gateway(
    running: RunningMesh,
) -> None:
    # Exactly what the README's "Add an agent" section tells a newcomer to do.
    readme = (ROOT / "README.md").read_text()
    source = re.search(r"```python file=greeter.py\n(.*?)```", readme, re.S)
    assert source, "the README shows greeter.py"
    (running.folder / "greeter.py").write_text(source.group(1))
    headers = {"Authorization": f"Bearer {running.key}"}
    async with (
        agent_process(running.nats_url, str(running.folder / "greeter.py") + ":agent"),
        httpx.AsyncClient(base_url=running.url, headers=headers, timeout=30) as client,
    ):
        reply = await client.post("/v1/agents/greeter/skills/greet", json={"input": "Ada"})
        listed: list[str] = []
        for _ in range(50):  # the gateway reads the registry at most once a second
            listed = [agent["name"] for agent in (await client.get("/v1/agents")).json()]
            if "greeter" in listed:
                break
            await asyncio.sleep(0.1)
    assert "greeter" in listed
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == "Hello, Ada!"


async def test_ctrl_c_stops_every_component(running: RunningMesh) -> None:
    running.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(running.process.wait(), 60) == 0
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=running.url) as client:
            await client.get("/healthz")


def test_the_banner_names_hivewire_as_it_can_be_run_from_where_up_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.upbanner import command

    clone = tmp_path / "my clone"
    script = clone / ".venv" / "bin" / "hivewire"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    # A fresh clone: `.venv/bin/hivewire up`, run from the clone.
    assert command(".venv/bin/hivewire", cwd=clone) == ".venv/bin/hivewire"
    # Started from another folder by its full path: that path, which works from there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert command(str(script), cwd=elsewhere) == f"'{script}'"
    # With the environment activated, the shell finds it by name.
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert command(str(script), cwd=elsewhere) == "hivewire"
