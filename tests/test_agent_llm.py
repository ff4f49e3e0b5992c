"""An agent process that calls a model: tokens stream to the conversation, history carries over,
the spend comes back with the reply and the task, and the environment can swap the model."""

from __future__ import annotations

import asyncio

import pytest

from agents import Mesh
from agents.usage import USAGE_KEY
from bus import EmbeddedNats, Message, StreamResponse, TaskState, new_id, subjects
from tests.openai_server import OpenAIServer
from tests.processes import agent_process
from tests.redis_server import RedisServer
from tests.task_events import hearing
from tests.zoo import Intent

RUN = new_id()[:8]  # a Redis from REDIS_URL may hold an earlier run's history
PRICES = '{"big": {"input": 1000000, "output": 1000000}}'  # one unit per token: easy to check


def _env(model_endpoint: OpenAIServer, redis_server: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "HIVEWIRE_LLM_BASE_URL": model_endpoint.url,
        "HIVEWIRE_LLM_API_KEY": "test",
        "HIVEWIRE_REDIS_URL": redis_server.url,
        "HIVEWIRE_LLM_PRICES": PRICES,
        **extra,
    }


async def test_tokens_stream_to_the_conversation_and_the_reply_carries_the_spend(
    nats_server: EmbeddedNats, mesh: Mesh, model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    model_endpoint.reply("big", "Open Settings, then Security.")
    chunks: list[str] = []

    def collect(event: StreamResponse) -> None:
        update = event.artifact_update
        if update is not None:
            chunks.append(update.artifact.parts[0].text)  # type: ignore[arg-type]

    async with (
        hearing(mesh, subjects.conversation_events("acme", f"{RUN}-llm-1"), collect),
        agent_process(nats_server.url, "tests.zoo:assistant", **_env(model_endpoint, redis_server)),
    ):
        caller = mesh.caller("acme", context_id=f"{RUN}-llm-1")
        reply = await caller.call("assistant", "answer", "How do I enable 2FA?")
        follow_up = await caller.call("assistant", "answer", "And then?", str)
    assert reply.text == "Open Settings, then Security."
    assert chunks[:4] == ["Open ", "Settings, ", "then ", "Security."]
    assert reply.metadata is not None
    assert reply.metadata[USAGE_KEY] == {
        "big": {"inputTokens": 5, "outputTokens": 4, "cost": 9.0, "modes": []}
    }
    assert follow_up == "Open Settings, then Security."
    # The second turn sent the first one along: the history is in Redis, shared by every replica.
    sent = [m["content"] for m in model_endpoint.requests[-1]["messages"]]
    assert sent == ["How do I enable 2FA?", "Open Settings, then Security.", "And then?"]


async def test_the_environment_swaps_a_declared_model_and_structured_output_is_typed(
    nats_server: EmbeddedNats, mesh: Mesh, model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    model_endpoint.reply("tiny", '{"intent": "security", "confidence": 0.8}')
    env = _env(model_endpoint, redis_server, HIVEWIRE_LLM_MODELS='{"assistant.classify": {"name": "tiny"}}')
    async with agent_process(nats_server.url, "tests.zoo:assistant", **env):
        intent = await mesh.caller("acme").call("assistant", "classify", "2FA help", Intent)
    assert intent == Intent(intent="security", confidence=0.8)
    assert model_endpoint.requests[-1]["model"] == "tiny"
    assert model_endpoint.requests[-1]["temperature"] == 0


async def test_a_durable_task_records_its_spend(
    nats_server: EmbeddedNats, mesh: Mesh, model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    model_endpoint.reply("big", "Done.")
    async with agent_process(nats_server.url, "tests.zoo:assistant", **_env(model_endpoint, redis_server)):
        task = await mesh.tasks.submit("acme", "assistant", "answer", "Summarise my tickets")
        done = await mesh.tasks.wait("acme", task.id, timeout=10)
    assert done.status.state is TaskState.COMPLETED
    assert done.metadata is not None
    assert done.metadata["usage"] == {"big": {"inputTokens": 3, "outputTokens": 1, "cost": 4.0, "modes": []}}


async def test_without_an_endpoint_the_agent_answers_offline_and_says_so(
    nats_server: EmbeddedNats, mesh: Mesh
) -> None:
    async with agent_process(nats_server.url, "tests.zoo:assistant"):
        reply = await mesh.caller("acme").call("assistant", "answer", "How do I enable 2FA?", Message)
        with pytest.raises(Exception, match="offline mode cannot produce a structured Intent"):
            await mesh.caller("acme").call("assistant", "classify", "2FA help", Intent)
    assert "offline mode" in reply.text
    assert reply.metadata is None or USAGE_KEY not in reply.metadata
    await asyncio.sleep(0)
