"""The research swarm with a model: analysts answer sub-questions in parallel as durable tasks, tool
results are cached until their source changes, the budget stops a run cleanly, a slow run raises an
alert, and a killed analyst replica's work is redone by another."""

from __future__ import annotations

import asyncio
import re
import shutil
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from agents import AgentRuntime, AgentSettings, Mesh
from agents.research.messages import RESEARCH_KEY, ResearchRequest, RunSummary
from agents.research.settings import CORPUS, DATA
from agents.research.writer import writer
from bus import Bus, EmbeddedNats, Message, StreamResponse, new_id, subjects
from knowledge.agent import knowledge
from knowledge.messages import IngestReply, IngestRequest
from tests.openai_server import OpenAIServer
from tests.processes import AgentProcess, agent_processes
from tests.redis_server import RedisServer
from tests.research_model import research_model
from tests.task_events import hearing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # the swarm starts slowly on a busy machine

BRIEF = "Assess the market for heat pumps in the Nordics"
RUN = new_id()[:6]  # tenants of this run: a Redis from REDIS_URL may hold an earlier run's caches


@dataclass
class Swarm:
    data: Path
    corpus: Path
    metrics: str
    analysts: list[AgentProcess]
    tenant: str


def _documents(corpus: Path, names: tuple[str, ...]) -> list[IngestRequest]:
    return [
        IngestRequest(source=path.name, text=path.read_text(), kb="research")
        for path in sorted(corpus.glob("*.md"))
        if not names or path.name in names
    ]


async def _ingest(mesh: Mesh, tenant: str, corpus: Path, *names: str) -> None:
    caller = mesh.caller(tenant, timeout=60)
    for request in _documents(corpus, names):
        await caller.call("knowledge", "ingest", request, IngestReply)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
async def swarm(
    nats_server: EmbeddedNats,
    openai_server: OpenAIServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Swarm]:
    """planner and two analyst replicas (four tasks at once each) as processes; knowledge and writer
    in this process (they start faster here, where their imports are done already)."""
    folder = tmp_path_factory.mktemp("research")
    data, corpus = folder / "data", folder / "corpus"
    shutil.copytree(DATA, data)
    shutil.copytree(CORPUS, corpus)
    env = {
        "HIVEWIRE_LLM_BASE_URL": openai_server.url,
        "HIVEWIRE_LLM_API_KEY": "test",
        "HIVEWIRE_REDIS_URL": redis_server.url,
        "HIVEWIRE_RESEARCH_DATA_DIR": str(data),
        "HIVEWIRE_TASK_CONCURRENCY": "4",
        "HIVEWIRE_LLM_RETRY_DELAY": "0.01",
        "HIVEWIRE_LLM_PRICES": '{"gpt-4o-mini": {"input": 1000000, "output": 1000000}}',  # a token costs 1
    }
    here = AgentSettings(
        _env_file=None,
        nats_url=nats_server.url,
        llm_base_url=openai_server.url,
        llm_api_key="test",
        redis_url=redis_server.url,
        llm_prices={"gpt-4o-mini": {"input": 1e6, "output": 1e6}},
    )
    bus = await Bus.connect(here)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIVEWIRE_CHROMA_PATH", str(folder / "chroma"))  # read as the knowledge agent starts
        local = [AgentRuntime(knowledge, bus, here), AgentRuntime(writer, bus, here)]
        await asyncio.gather(*(runtime.start() for runtime in local))
    try:
        async with agent_processes(
            nats_server.url,
            ("agents.research.planner:planner", {**env, "HIVEWIRE_METRICS_PORT": "0"}),
            ("agents.research.analyst:analyst", env),
            ("agents.research.analyst:analyst", env),
        ) as (planner, first, second):
            tenant = f"r{RUN}"
            await _ingest(await Mesh.open(bus, here), tenant, corpus)
            metrics = planner.banner.rsplit("metrics at ", 1)[1]
            yield Swarm(data=data, corpus=corpus, metrics=metrics, analysts=[first, second], tenant=tenant)
    finally:
        await asyncio.gather(*(runtime.stop(grace=1) for runtime in local))
        await bus.close()


async def _research(mesh: Mesh, tenant: str, request: ResearchRequest) -> tuple[Message, RunSummary]:
    reply = await mesh.caller(tenant).call("planner", "research", request, Message, timeout=60)
    assert reply.metadata is not None
    return reply, msgspec.convert(reply.metadata[RESEARCH_KEY], RunSummary)


async def test_analysts_answer_in_parallel_and_the_writer_cites_their_sources(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.respond_with(research_model)
    model_endpoint.latency = 0.3
    reply, summary = await _research(mesh, swarm.tenant, ResearchRequest(brief=BRIEF, cache=False))
    assert (summary.questions, summary.answered, summary.stopped) == (8, 8, "")
    # Eight sub-questions on two replicas with four slots each: all ran at once.
    slots = summary.timeline
    assert len(slots) == 8
    assert max(s.started for s in slots) < min(s.ended for s in slots)
    assert summary.analysts == 2
    # The plan, two calls per analyst (tools, then the finding) and the report.
    assert len(model_endpoint.requests) == 1 + 8 * 2 + 1
    assert summary.input_tokens > 0
    assert summary.cost == summary.input_tokens + summary.output_tokens  # every agent's calls, priced
    assert summary.tokens_per_second > 0
    assert reply.metadata is not None
    assert reply.metadata["hivewire.usage"]["gpt-4o-mini"]["inputTokens"] > 0
    text = reply.text
    assert text.startswith("# Market report")
    assert "[1] Residential heat pumps in the Nordics (heat-pumps-nordics.md)" in text
    assert "market_size.csv (data table)" in text
    assert "8 of 8 questions answered by 2 analysts" in text  # the footer
    assert f"cost {summary.cost:.4f}" in text
    # The analysts read the sources the writer lists: a table's rows went to the model.
    analysed = [r for r in model_endpoint.requests if any(m.get("role") == "tool" for m in r["messages"])]
    assert any("heat pumps,Nordics,2024,1840" in str(r["messages"]) for r in analysed)


async def test_a_repeat_run_is_served_from_the_caches_until_a_source_changes(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.respond_with(research_model)
    tenant = f"c{RUN}"
    await _ingest(mesh, tenant, swarm.corpus)
    request = ResearchRequest(brief=BRIEF, max_questions=5)
    _, cold = await _research(mesh, tenant, request)
    asked = len(model_endpoint.requests)
    repeat, warm = await _research(mesh, tenant, request)
    assert (cold.tool_calls, cold.tool_cache_hits) == (8, 0)  # five searches, three tables
    assert (warm.tool_calls, warm.tool_cache_hits) == (8, 8)
    assert len(model_endpoint.requests) == asked  # every model answer came from the response cache
    assert "tool cache: 8 of 8 calls (100%)" in repeat.text

    table = swarm.data / "market_size.csv"
    original = table.read_text()
    try:
        table.write_text(original.replace("heat pumps,Nordics,2024,1840,", "heat pumps,Nordics,2024,1905.5,"))
        _, after_table = await _research(mesh, tenant, request)
    finally:
        table.write_text(original)
    assert after_table.tool_cache_hits == 7  # only the query of the changed table ran again
    assert "1905.5" in str(model_endpoint.requests[-3:])  # its new rows reached the model

    document = swarm.corpus / "heat-pumps-nordics.md"
    document.write_text(document.read_text().replace("most mature in Europe", "most advanced in Europe"))
    await _ingest(mesh, tenant, swarm.corpus, document.name)
    _, after_corpus = await _research(mesh, tenant, request)
    assert after_corpus.tool_cache_hits == 3  # the tables still hit; every corpus search missed


async def test_the_budget_stops_a_run_cleanly_with_what_it_has(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.respond_with(research_model)
    reply, summary = await _research(
        mesh, swarm.tenant, ResearchRequest(brief=BRIEF, max_tokens=3000, cache=False)
    )
    assert summary.stopped == "budget"
    assert summary.input_tokens + summary.output_tokens <= 3000
    assert summary.answered == 8  # what the model could not pay for, the sources answered as written
    assert "stopped early: the run's budget" in reply.text
    assert "## Sources" in reply.text


async def test_a_slow_run_raises_an_alert_on_its_conversation_and_in_metrics(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.respond_with(research_model)
    model_endpoint.latency = 0.3
    context = new_id()
    alerts: list[dict[str, object]] = []

    def collect(event: StreamResponse) -> None:
        update = event.status_update
        if not isinstance(update, msgspec.UnsetType) and update.status.message is not None:
            alert = (update.status.message.metadata or {}).get("hivewire.alert")
            if alert is not None:
                alerts.append(alert)

    async with hearing(mesh, subjects.conversation_events(swarm.tenant, context), collect):
        request = ResearchRequest(brief=BRIEF, max_questions=2, alert_after=0.5, cache=False)
        reply = await mesh.caller(swarm.tenant, context_id=context).call(
            "planner", "research", request, Message, timeout=60
        )
    assert reply.metadata is not None
    assert reply.metadata[RESEARCH_KEY]["slow"] is True
    assert "slow run (alert raised)" in reply.text
    assert [(a["kind"], a["thresholdSeconds"]) for a in alerts] == [("slow_run", 0.5)]
    scraped = await asyncio.to_thread(_scrape, swarm.metrics)
    slow = re.search(
        rf'hivewire_research_slow_runs_total{{[^}}]*tenant="{swarm.tenant}"[^}}]*}} (\S+)', scraped
    )
    assert slow is not None
    assert float(slow.group(1)) == 1
    assert "hivewire_research_run_duration_seconds_count" in scraped


async def test_a_model_that_keeps_failing_still_yields_a_report_from_the_sources(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.fail(503, times=1000)
    request = ResearchRequest(brief=BRIEF, max_questions=3, cache=False)
    reply, summary = await _research(mesh, swarm.tenant, request)
    # The plan fell back to the framework, the analysts to the sources, the writer to the findings.
    assert (summary.questions, summary.answered, summary.stopped) == (3, 3, "")
    assert "The model failed before the report could be written" in reply.text
    assert "Revenue was EUR 1,840 million in 2024" in reply.text
    assert "## Sources" in reply.text


async def test_a_killed_analyst_replica_still_yields_the_complete_report(
    swarm: Swarm, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    # Last in this module: it kills one of the two analysts.
    model_endpoint.respond_with(research_model)
    model_endpoint.latency = 1.0
    victim, survivor = swarm.analysts
    running = asyncio.create_task(_research(mesh, swarm.tenant, ResearchRequest(brief=BRIEF, cache=False)))
    for _ in range(200):  # until the victim is working on its share of the sub-questions
        found = [i for i in await mesh.registry.instances("analyst") if i.pid == victim.pid]
        if found and found[0].load.in_flight:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the analyst never took a sub-question")
    victim.kill()
    reply, summary = await asyncio.wait_for(running, 60)
    assert (summary.questions, summary.answered, summary.stopped) == (8, 8, ""), summary
    assert summary.retried >= 1, summary  # redelivered after the ack wait, to the replica still alive
    workers = {slot.instance.rsplit("-", 1)[1] for slot in summary.timeline}
    assert workers == {str(survivor.pid)}, (victim.pid, summary)
    assert "8 of 8 questions answered by 1 analyst" in reply.text
