"""The support desk with a model: triage classifies with the small model while the knowledge agent
searches, the answer agent streams a reply grounded in (and citing) the passages found."""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents import Mesh
from agents.desk.answer import NOT_FOUND, NOT_SEARCHED
from agents.desk.citations import Citations
from agents.desk.labels import INTENTS, SENTIMENTS, IntentLabel, SentimentLabel
from bus import EmbeddedNats, Message, new_id
from knowledge.messages import IngestReply, IngestRequest
from tests.openai_server import OpenAIServer
from tests.processes import AgentProcess, agent_process, paused

SAMPLES = Path(__file__).resolve().parent.parent / "knowledge" / "samples" / "support"
ANSWER = "Duplicate charges are always refunded in full [1]."


@pytest.fixture(scope="module")
async def desk(
    nats_server: EmbeddedNats, openai_server: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AgentProcess]:
    """The desk's three agents; the knowledge agent's process is yielded (a test freezes it)."""
    env = {
        "HIVEWIRE_LLM_BASE_URL": openai_server.url,
        "HIVEWIRE_LLM_API_KEY": "test",
        # The small model classifies, the big one answers (the test server answers per model).
        "HIVEWIRE_LLM_MODELS": json.dumps(
            {"triage.classify": {"name": "small"}, "answer.default": {"name": "big"}}
        ),
        "HIVEWIRE_CHROMA_PATH": str(tmp_path_factory.mktemp("chroma")),
    }
    async with (
        agent_process(nats_server.url, "knowledge.agent:knowledge", **env) as knowledge,
        agent_process(nats_server.url, "agents.desk.triage:triage", **env),
        agent_process(nats_server.url, "agents.desk.answer:answer", **env),
    ):
        yield knowledge


@pytest.fixture
async def seeded(desk: AgentProcess, mesh: Mesh) -> str:
    tenant = f"desk{new_id()[:6]}"
    article = SAMPLES / "billing-refunds-and-cancellations.md"
    await mesh.caller(tenant).call(
        "knowledge",
        "ingest",
        IngestRequest(source=article.name, text=article.read_text()),
        IngestReply,
        timeout=60,
    )
    return tenant


async def test_a_question_is_classified_searched_and_answered_with_citations(
    seeded: str, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("small", '{"label": "billing"}')
    model_endpoint.reply("big", ANSWER)
    reply = await mesh.caller(seeded).call(
        "triage", "chat", "I was charged twice this month", Message, timeout=30
    )
    assert reply.text == ANSWER
    assert reply.metadata is not None
    desk = reply.metadata["hivewire.desk"]
    assert desk["intent"] == "billing"
    assert desk["sources"] == ["billing-refunds-and-cancellations.md"]
    assert desk["handoff"] is False
    # The turn's spend covers both agents: triage's classification and answer's reply.
    assert set(reply.metadata["hivewire.usage"]) == {"small", "big"}
    answered = next(r for r in model_endpoint.requests if r["model"] == "big")
    prompt = json.dumps(answered["messages"])
    assert "Duplicate charges" in prompt  # the passage found went to the model
    assert "cite" in prompt.lower()


async def test_a_failing_classifier_model_gives_way_to_classification_by_example(
    seeded: str, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.fail(500, times=20, model="small")
    model_endpoint.reply("big", ANSWER)
    reply = await mesh.caller(seeded).call(
        "triage", "chat", "I was charged twice this month", Message, timeout=30
    )
    assert reply.text == ANSWER
    assert reply.metadata is not None
    assert reply.metadata["hivewire.desk"]["intent"] == "billing"  # the examples' reading


async def test_a_citation_of_a_passage_the_model_was_not_given_is_dropped(
    seeded: str, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("small", '{"label": "billing"}')
    model_endpoint.reply("big", "Refunds take 5 to 10 business days [1] [9]. Ask within 30 days [7].")
    reply = await mesh.caller(seeded).call(
        "triage", "chat", "How long does a refund take once approved?", Message, timeout=30
    )
    assert reply.text == "Refunds take 5 to 10 business days [1]. Ask within 30 days."
    assert reply.metadata is not None
    assert reply.metadata["hivewire.desk"]["citations"][0] == "billing-refunds-and-cancellations.md"


async def test_with_nothing_relevant_found_no_model_is_asked_and_the_reply_says_so(
    seeded: str, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("small", '{"label": "how_to"}')
    reply = await mesh.caller(seeded).call(
        "triage", "chat", "Which rocket engines power a Saturn V?", Message, timeout=30
    )
    assert reply.text == NOT_FOUND
    assert {r["model"] for r in model_endpoint.requests} == {"small"}  # the classifiers, not the answer


async def test_a_knowledge_base_that_cannot_be_searched_is_not_called_empty(
    seeded: str, desk: AgentProcess, mesh: Mesh, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("small", '{"label": "billing"}')
    async with paused(desk.process.pid):  # the knowledge agent hangs: its search is late
        reply = await mesh.caller(seeded).call(
            "triage", "chat", "I was charged twice this month", Message, timeout=30
        )
    # Not "I couldn't find this in the knowledge base": nobody looked.
    assert reply.text == NOT_SEARCHED
    assert reply.metadata is not None
    assert reply.metadata["hivewire.desk"]["searched"] is False
    assert {r["model"] for r in model_endpoint.requests} == {"small"}  # no answer made up without passages


def test_the_classifiers_may_answer_only_with_the_desks_labels() -> None:
    assert set(typing.get_args(typing.get_type_hints(IntentLabel)["label"])) == set(INTENTS)
    assert set(typing.get_args(typing.get_type_hints(SentimentLabel)["label"])) == set(SENTIMENTS)


def test_citations_are_checked_as_they_stream_even_split_across_tokens() -> None:
    citations = Citations(passages=2)
    tokens = ["Open Settings ", "[", "1", "]. Then", " Security [", "2, 5", "] and", " Help [3]", "."]
    streamed = [citations.feed(token) for token in tokens] + [citations.flush()]
    assert "".join(streamed) == "Open Settings [1]. Then Security [2] and Help."
    assert citations.cited == [1, 2]
    assert citations.dropped == 2
    assert Citations(passages=1).feed("not a citation: [n] or [x]") == "not a citation: [n] or [x]"
