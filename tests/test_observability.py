"""Watching a turn as an operator does: its JSON log lines name its trace, its trace runs from the HTTP
request through the bus to the model and back, and the gateway's and the agent's ``/metrics`` answer
how long turns take, how deep each agent's backlog is, what the model costs and who is refused.

One gateway (``hivewire gateway``) and one agent (``hivewire agent run tests.zoo:assistant``) run as
processes, each configured as ``hivewire up`` configures its children: JSON logs, spans into the span
store, Prometheus metrics on a port of its own. The model is the OpenAI-compatible test server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents import AgentRuntime
from agents.settings import AgentSettings
from bus import Bus, EmbeddedNats, new_id
from bus.logs import JsonFormatter, bind
from gateway.uplogs import child_logs
from gateway.waterfall import render
from tests import metric_names, zoo
from tests.gateway_server import api_keys, free_port
from tests.metric_points import agent_points
from tests.openai_server import OpenAIServer
from tests.processes import AGENT_ENV, AgentProcess, agent_process, gateway_process
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)

TENANT = f"watched{new_id()[:6]}"
SLOW = f"throttled{new_id()[:6]}"  # one request a minute
BROKE = f"broke{new_id()[:6]}"  # one token a day


@dataclass
class Observed:
    gateway: str
    agent_metrics: str
    agent_log: Path
    gateway_log: Path
    keys: dict[str, str]


@dataclass
class JsonTurn:
    conversation_id: str
    task_id: str
    trace_id: str
    body: dict[str, Any]


@pytest.fixture(scope="module")
async def observed(
    nats_server: EmbeddedNats,
    redis_server: RedisServer,
    openai_server: OpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Observed]:
    openai_server.clear()
    logs = tmp_path_factory.mktemp("logs")
    log, gateway_log = logs / "assistant.log", logs / "gateway.log"
    common = {
        "HIVEWIRE_LOG_FORMAT": "json",
        "HIVEWIRE_REDIS_URL": redis_server.url,
        "OTEL_TRACES_EXPORTER": "hivewire",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    limits = {SLOW: {"rate": 1 / 60, "burst": 1}, BROKE: {"daily_tokens": 1}}
    port = free_port()
    # The keys exist before the gateway starts: one made after may reach its key watcher after
    # the first request does (a 401 on a loaded machine).
    made = await api_keys(nats_server.url, TENANT, SLOW, BROKE)
    with log.open("wb") as stderr, gateway_log.open("wb") as gateway_stderr:
        async with contextlib.AsyncExitStack() as stack:
            # Started together: each takes a few seconds to import and connect.
            started = await asyncio.gather(
                stack.enter_async_context(
                    agent_process(
                        nats_server.url,
                        "tests.zoo:assistant",
                        stderr=stderr,
                        HIVEWIRE_LLM_BASE_URL=openai_server.url,
                        HIVEWIRE_LLM_RETRY_DELAY="0.05",
                        HIVEWIRE_METRICS_PORT="0",
                        **common,
                    )
                ),
                stack.enter_async_context(
                    gateway_process(
                        nats_server.url,
                        port,
                        stderr=gateway_stderr,
                        HIVEWIRE_GATEWAY_AGENT="assistant",
                        HIVEWIRE_GATEWAY_SKILL="chat",
                        HIVEWIRE_GATEWAY_TENANT_LIMITS=json.dumps(limits),
                        OTEL_METRICS_EXPORTER="prometheus",
                        **common,
                    )
                ),
                return_exceptions=True,  # both entered or failed before the stack unwinds
            )
            for result in started:
                if isinstance(result, BaseException):
                    raise result
            agent = started[0]
            assert isinstance(agent, AgentProcess)
            metrics = re.search(r"metrics at (http://\S+)", agent.banner)
            assert metrics, agent.banner
            observed = Observed(f"http://127.0.0.1:{port}", metrics.group(1), log, gateway_log, made)
            await _until_the_gateway_sees_the_agent(observed)
            yield observed
    openai_server.clear()


async def _until_the_gateway_sees_the_agent(observed: Observed) -> None:
    """Both processes are up; the gateway learns of the agent from the registry (on a loaded
    machine, a moment after the agent's banner)."""
    async with _client(observed) as client:
        for _ in range(150):
            listed = await client.get("/v1/agents")
            if listed.status_code == 200 and "assistant" in listed.text:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the gateway never saw the agent: {listed.status_code} {listed.text}")


def _client(observed: Observed, tenant: str = TENANT) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {observed.keys[tenant]}"}
    return httpx.AsyncClient(base_url=observed.gateway, headers=headers, timeout=30)


@pytest.fixture(scope="module")
async def json_turn(observed: Observed, openai_server: OpenAIServer) -> JsonTurn:
    """One turn whose first model attempt fails (503), so the agent logs a warning inside the turn."""
    openai_server.fail(503, model="big")
    async with _client(observed) as client:
        made = await client.post("/v1/conversations")
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        reply = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "Why is the sky blue?"})
    assert reply.status_code == 200, reply.text
    _, trace_id, _, _ = reply.headers["traceresponse"].split("-")
    body = reply.json()
    return JsonTurn(cid, body["taskId"], trace_id, body)


async def _log_lines(path: Path, wanted: str) -> list[dict[str, Any]]:
    """Every line the agent has logged (each must be a JSON object) once one contains ``wanted``."""
    for _ in range(100):
        lines = [json.loads(line) for line in _read(path).splitlines() if line.strip()]
        if any(wanted in line["message"] for line in lines):
            return lines
        await asyncio.sleep(0.1)
    raise AssertionError(f"no log line with {wanted!r}:\n{_read(path)}")


def _read(path: Path) -> str:
    return path.read_text()


async def test_a_turns_json_log_lines_name_its_trace_tenant_conversation_and_task(
    observed: Observed, json_turn: JsonTurn
) -> None:
    lines = await _log_lines(observed.agent_log, "model big failed")
    (failed,) = [line for line in lines if "model big failed" in line["message"]]
    assert failed["level"] == "WARNING"
    assert failed["logger"] == "agents.llm.client"
    assert "HTTP 503" in failed["message"]
    assert failed["message"].endswith("trying again")
    # The trace the client was told of in `traceresponse`, and the turn's own ids.
    assert failed["trace_id"] == json_turn.trace_id
    assert re.fullmatch(r"[0-9a-f]{16}", failed["span_id"])
    assert failed["tenant"] == TENANT
    assert failed["conversation_id"] == json_turn.conversation_id
    assert failed["task_id"] == json_turn.task_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failed["time"])
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


async def test_a_failed_turn_is_logged_by_the_gateway_with_its_trace_and_counted(
    observed: Observed, openai_server: OpenAIServer
) -> None:
    openai_server.fail(503, times=6)  # every attempt on the model and on its fallback
    try:
        async with _client(observed) as client:
            cid = (await client.post("/v1/conversations")).json()["id"]
            reply = await client.post(f"/v1/conversations/{cid}/messages", json={"text": "Anyone there?"})
            metrics = await _scrape(observed.gateway + "/metrics")
    finally:
        openai_server.clear()
    assert reply.status_code == 503, reply.text
    _, trace_id, _, _ = reply.headers["traceresponse"].split("-")
    lines = await _log_lines(observed.gateway_log, "turn with assistant.chat failed")
    (failed,) = [line for line in lines if "turn with assistant.chat failed" in line["message"]]
    assert failed["logger"] == "gateway.turns"
    assert failed["trace_id"] == trace_id
    assert (failed["tenant"], failed["conversation_id"]) == (TENANT, cid)
    assert re.fullmatch(r"[0-9a-f]{32}", failed["task_id"])
    failures = _series(metrics, "hivewire_turn_duration_seconds_count")
    assert any('error_type="RemoteError"' in line and 'agent="assistant"' in line for line in failures), (
        failures
    )


async def test_a_turns_trace_runs_from_http_through_the_bus_to_the_model_and_back(
    observed: Observed, json_turn: JsonTurn
) -> None:
    async with _client(observed) as client:
        spans: list[dict[str, Any]] = []
        for _ in range(100):  # each process sends its spans in batches
            response = await client.get(f"/v1/traces/{json_turn.trace_id}")
            spans = response.json()["spans"] if response.status_code == 200 else []
            if sum(span["name"] == "chat big" for span in spans) == 2:
                break
            await asyncio.sleep(0.1)
    by_id = {span["spanId"]: span for span in spans}
    (root,) = [span for span in spans if span["parentId"] not in by_id]
    assert (root["service"], root["kind"], root["name"]) == (
        "hivewire-gateway",
        "server",
        "POST /v1/conversations/{cid}/messages",
    )

    def ancestry(span: dict[str, Any]) -> list[str]:
        chain = [f"{span['service']} {span['kind']}"]
        while span["parentId"] in by_id:
            span = by_id[span["parentId"]]
            chain.append(f"{span['service']} {span['kind']}")
        return chain[::-1]

    failed, answered = sorted((s for s in spans if s["name"] == "chat big"), key=lambda s: s["start"])
    assert failed["status"] == "error"
    assert answered["status"] != "error"
    # HTTP in, a request over NATS, the agent handling it, the model called: every parent present.
    assert ancestry(answered) == [
        "hivewire-gateway server",  # POST /v1/conversations/{cid}/messages
        "hivewire-gateway producer",  # request hw.watched.agent.assistant.chat
        "hivewire-agent-assistant consumer",  # process hw.*.agent.assistant.chat
        "hivewire-agent-assistant client",  # chat big
    ]
    assert ancestry(failed) == ancestry(answered)
    assert answered["attributes"]["gen_ai.request.model"] == "big"
    assert {span["tenant"] for span in spans} == {TENANT}
    # The reply names the same trace, for clients that do not read headers.
    assert json_turn.body["message"]["metadata"]["hivewire.trace"] == json_turn.trace_id


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.text


def _series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")]


async def test_the_gateway_and_the_agent_serve_the_metrics_operators_ask_for(
    observed: Observed, json_turn: JsonTurn
) -> None:
    async with _client(observed) as client:
        cid = (await client.post("/v1/conversations")).json()["id"]
        async with client.stream(
            "POST",
            f"/v1/conversations/{cid}/messages",
            json={"text": "Tell me a story"},
            headers={"Accept": "text/event-stream"},
        ) as stream:
            assert stream.status_code == 200
            events = [line async for line in stream.aiter_lines() if line.startswith("event:")]
        assert "event: artifact-update" in events or any("artifact" in e for e in events), events
    async with _client(observed, SLOW) as slow:
        codes = [(await slow.get("/v1/conversations")).status_code for _ in range(2)]
    assert codes == [200, 429]
    async with _client(observed, BROKE) as broke:
        cid = (await broke.post("/v1/conversations")).json()["id"]
        first = await broke.post(f"/v1/conversations/{cid}/messages", json={"text": "Hello"})
        second = await broke.post(f"/v1/conversations/{cid}/messages", json={"text": "Hello again"})
    assert first.status_code == 200, first.text
    assert second.status_code == 429
    assert second.json()["type"].endswith("/token-budget-exhausted")

    gateway = await _scrape(observed.gateway + "/metrics")
    turns = _series(gateway, "hivewire_turn_duration_seconds_count")
    assert any('agent="assistant"' in line and 'skill="chat"' in line for line in turns), turns
    assert _series(gateway, "hivewire_turn_time_to_first_token_seconds_count")
    assert "+Inf" in "".join(_series(gateway, "hivewire_turn_duration_seconds_bucket"))
    assert 'le="2.5"' in "".join(_series(gateway, "hivewire_turn_duration_seconds_bucket"))
    throttled = _series(gateway, "hivewire_gateway_throttled_total")
    assert any(f'tenant="{SLOW}"' in line and 'reason="rate"' in line for line in throttled), throttled
    assert any(f'tenant="{BROKE}"' in line and 'reason="budget"' in line for line in throttled), throttled
    assert any('http_response_status_code="429"' in line for line in gateway.splitlines())
    assert _series(gateway, "hivewire_gateway_event_streams")  # open now: none, but known
    assert _series(gateway, "hivewire_nats_connected")[0].endswith(" 1.0")
    assert _series(gateway, "hivewire_redis_available")[0].endswith(" 1.0")

    agent = await _scrape(observed.agent_metrics)
    tokens = _series(agent, "hivewire_llm_tokens_total")
    assert any(f'tenant="{TENANT}"' in line and 'gen_ai_response_model="big"' in line for line in tokens)
    assert _series(agent, "hivewire_llm_cost_total")
    assert _series(agent, "gen_ai_client_operation_duration_seconds_count")
    assert _series(agent, "hivewire_llm_cache_misses_total")
    assert _series(agent, "messaging_process_duration_seconds_count")
    for name in (
        "hivewire_tasks_queue_depth",
        "hivewire_tasks_consumer_lag",
        "hivewire_tasks_dead_letters",
    ):
        (line,) = _series(agent, name)
        assert 'agent="assistant"' in line, line
    assert _series(agent, "hivewire_tasks_dead_lettered_total")
    assert _series(agent, "hivewire_nats_connected")[0].endswith(" 1.0")
    # Every series is one the catalogue read from the code names (the dashboard and alerts use it).
    scraped = {
        line.split("{")[0].split(" ")[0]
        for line in (gateway + agent).splitlines()
        if line and not line.startswith("#")
    }
    ours = {name for name in scraped if name.startswith(("hivewire_", "http_", "messaging_", "gen_ai_"))}
    assert len(ours) > 20
    assert ours <= metric_names.exported(), ours - metric_names.exported()


async def _replicas_reported(observed: Observed, agent: str, wanted: int, within: float) -> float:
    """Scrape the gateway until it reports ``wanted`` live replicas of ``agent``; return how long it took."""
    started = time.monotonic()
    series: list[str] = []
    while time.monotonic() - started < within:
        series = [
            line
            for line in _series(await _scrape(observed.gateway + "/metrics"), "hivewire_mesh_agent_replicas")
            if f'agent="{agent}"' in line
        ]
        if series and float(series[0].rsplit(" ", 1)[1]) == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {wanted} replicas of {agent} reported after {within} s: {series}")


async def test_the_gateway_reports_an_agent_whose_last_replica_died_with_zero_replicas(
    observed: Observed, nats_server: EmbeddedNats
) -> None:
    # What HivewireAgentDown alerts on: a series that vanished with the agent could not fire.
    ttl = float(AGENT_ENV["HIVEWIRE_HEARTBEAT_INTERVAL"]) * int(AGENT_ENV["HIVEWIRE_HEARTBEAT_MISSES"])
    async with agent_process(nats_server.url, "tests.zoo:teller") as teller:
        await _replicas_reported(observed, "teller", 1, within=20)
        teller.kill()  # no goodbye: only the missing heartbeats tell
        await teller.process.wait()
        # The registry drops it after its TTL; the gateway reads it every beat (through a 1 s cache).
        took = await _replicas_reported(observed, "teller", 0, within=ttl + 10)
    assert took < ttl + 5, took
    await asyncio.sleep(ttl)
    await _replicas_reported(observed, "teller", 0, within=0.5)  # and stays reported
    gateway = await _scrape(observed.gateway + "/metrics")
    assert any('agent="assistant"' in line for line in _series(gateway, "hivewire_mesh_agent_replicas"))


async def test_log_lines_outside_a_turn_name_nothing_and_a_turns_ids_stay_in_it() -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.observability")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    async def turn(tenant: str) -> None:
        bind(tenant=tenant, conversation_id=f"c-{tenant}")
        bind(task_id=f"t-{tenant}")  # adds to what was bound
        await asyncio.sleep(0)
        log.info("working for %s", tenant)

    try:
        log.info("starting")
        await asyncio.gather(turn("a"), turn("b"))
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("after")
    finally:
        log.removeHandler(handler)
    start, *turns, after = (json.loads(line) for line in lines)
    assert set(start) == {"time", "level", "logger", "message"}
    assert sorted((t["tenant"], t["conversation_id"], t["task_id"], t["message"]) for t in turns) == [
        ("a", "c-a", "t-a", "working for a"),
        ("b", "c-b", "t-b", "working for b"),
    ]
    assert "tenant" not in after
    assert after["level"] == "ERROR"
    assert "ValueError: boom" in after["exception"]


def test_an_unknown_log_format_or_level_is_refused_at_once() -> None:
    for args, env in ((["--log-format", "xml"], {}), ([], {"HIVEWIRE_LOG_FORMAT": "xml"})):
        result = subprocess.run(
            [sys.executable, "-m", "bus.cli", *args, "agents"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert "xml" in result.stderr


async def test_hivewire_traces_draws_a_turns_waterfall_from_the_gateway(
    observed: Observed, json_turn: JsonTurn
) -> None:
    env = {**os.environ, "HIVEWIRE_API_KEY": observed.keys[TENANT]}
    for _ in range(50):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bus.cli", "traces", json_turn.trace_id, "--url", observed.gateway,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = (part.decode() for part in await process.communicate())
        if process.returncode == 0 and "chat big ✗" in out and "chat big stream" in out:
            break
        await asyncio.sleep(0.1)
    assert process.returncode == 0, err
    head, _blank, root, *rest = out.splitlines()
    assert head.startswith(f"trace {json_turn.trace_id}: ")
    assert "2 services" in head
    assert root.lstrip().startswith("0.0 ms")
    assert "POST /v1/conversations/{cid}/messages" in root
    assert "hivewire-gateway" in root
    # Children are indented under their parents; the failed model attempt is marked and explained.
    (model,) = [line for line in rest if "chat big ✗" in line]
    assert "      chat big ✗" in model
    assert any(line.startswith("✗ chat big (hivewire-agent-assistant): ") for line in rest)

    wrong = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "traces", "f" * 32, "--url", observed.gateway,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await wrong.communicate()
    assert wrong.returncode == 1
    assert err_bytes.decode().startswith("hivewire traces: No such trace")


def test_a_waterfall_puts_orphans_at_the_top_and_scales_bars_to_the_trace() -> None:
    ms = 1_000_000
    spans = [
        {"spanId": "a", "parentId": None, "name": "root", "service": "s1", "start": 0, "end": 100 * ms},
        {"spanId": "b", "parentId": "a", "name": "child", "service": "s2", "start": 50 * ms, "end": 100 * ms},
        {
            "spanId": "c",
            "parentId": "gone",
            "name": "orphan",
            "service": "s2",
            "start": 10 * ms,
            "end": 20 * ms,
        },
    ]
    lines = render("t" * 32, spans, width=10).splitlines()
    assert lines[0] == f"trace {'t' * 32}: 3 spans, 2 services, 100.0 ms"
    root, child, orphan = lines[2:]
    assert root.endswith("|██████████|")
    assert child.endswith("|     █████|")
    assert "  child" in child
    assert orphan.endswith("| █        |")
    assert " 10.0 ms" in orphan
    assert render("t" * 32, []) == f"trace {'t' * 32}: no spans"


def test_up_marks_each_childs_lines_with_its_name_in_either_format() -> None:
    text = child_logs(argparse.Namespace(child_log_level="info", child_log_format=None, log_format="text"))
    assert text.args() == ["--log-level", "INFO", "--log-format", "text"]
    assert text.mark("triage", "2026 WARNING x: y") == "triage    | 2026 WARNING x: y"
    json_logs = child_logs(
        argparse.Namespace(child_log_level=None, child_log_format="json", log_format="text")
    )
    assert json_logs.level == "WARNING"
    line = json_logs.mark("answer", '{"level": "ERROR", "message": "m", "trace_id": "t"}')
    assert json.loads(line) == {"process": "answer", "level": "ERROR", "message": "m", "trace_id": "t"}
    assert json.loads(json_logs.mark("answer", "Traceback (most recent call last):")) == {
        "process": "answer",
        "message": "Traceback (most recent call last):",
    }


async def test_agents_sharing_a_process_each_report_their_backlog_and_keep_their_dead_letter_count(
    agent_settings: AgentSettings,
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    bus = await Bus.connect(agent_settings, meter_provider=provider)
    try:
        # Bounded below pytest's timeout: a hang then shows the await it is stuck in (one CI run on
        # a loaded machine hung here, never reproduced).
        async with asyncio.timeout(90), AgentRuntime(zoo.echo, bus, agent_settings):
            async with AgentRuntime(zoo.jobs, bus, agent_settings):
                for _ in range(50):  # the first read is made as the runtime starts
                    if set(agent_points(reader, "hivewire.tasks.consumer.lag")) == {"echo", "jobs"}:
                        break
                    await asyncio.sleep(0.05)
                assert set(agent_points(reader, "hivewire.tasks.consumer.lag")) == {"echo", "jobs"}
                assert set(agent_points(reader, "hivewire.tasks.queue.depth")) == {"echo", "jobs"}
                assert agent_points(reader, "hivewire.nats.connected") == {"None": 1}
            # The stopped one is no longer observed; the other still is.
            assert set(agent_points(reader, "hivewire.tasks.consumer.lag")) == {"echo"}
            assert set(agent_points(reader, "hivewire.tasks.dead_lettered")) == {"echo", "jobs"}
    finally:
        await bus.close()
    assert agent_points(reader, "hivewire.tasks.consumer.lag") == {}
