"""Model calls: the real openai client against the test server, the response cache, fallback,
streaming, structured output, accounting, offline mode, and Redis going away."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import msgspec
import pytest
import uvloop
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents import AgentSettings, LLMError, ModelUnavailable, StructuredOutputError
from agents.llm import OFFLINE_MODEL, ChatMessage, Model, Passage, Scope, Tool, extractive_answer
from agents.redisstore import RedisStore
from agents.resources import Resources
from bus import new_id
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer

QUESTION = [ChatMessage.user("How do I reset my password?")]
# Conversation ids unique to this run: a Redis from REDIS_URL may hold an earlier run's keys.
RUN = new_id()[:8]


def llm_settings(endpoint: OpenAIServer | None, redis: RedisServer | None, **extra: object) -> AgentSettings:
    values: dict[str, object] = {
        "_env_file": None,
        "llm_base_url": endpoint.url if endpoint else None,
        "llm_api_key": "test",
        "llm_retry_delay": 0.01,
        "redis_url": redis.url if redis else None,
        "redis_retry_interval": 0.2,
        "llm_prices": {"big": {"input": 2.0, "output": 8.0}, "small": {"input": 0.5, "output": 1.0}},
        **extra,
    }
    return AgentSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def resources(model_endpoint: OpenAIServer, redis_server: RedisServer) -> AsyncIterator[Resources]:
    made = Resources.from_settings(llm_settings(model_endpoint, redis_server))
    yield made
    await made.close()


def scope(context: str = "c1", tenant: str = "acme", cache: str = "conversation") -> Scope:
    return Scope(tenant=tenant, agent="answer", context_id=f"{RUN}-{context}", cache=cache)  # type: ignore[arg-type]


async def test_a_completion_carries_text_usage_and_cost(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    answer = await resources.llm.complete(Model(name="big"), QUESTION, scope=scope())
    assert answer.text == "echo: How do I reset my password?"
    assert answer.model == "big"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (6, 7)
    assert answer.usage.cost == pytest.approx((6 * 2.0 + 7 * 8.0) / 1_000_000)
    assert not answer.cached
    assert model_endpoint.requests[0]["model"] == "big"


async def test_a_repeated_call_is_answered_from_the_cache(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    first = await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-cache"))
    second = await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-cache"))
    assert second.text == first.text
    assert second.cached
    assert second.usage.cost == 0
    assert len(model_endpoint.requests) == 1
    assert resources.cache.stats.local_hits == 1


async def test_the_cache_never_crosses_conversations_or_tenants(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-a"))
    other_chat = await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-b"))
    assert not other_chat.cached
    # Tenant-wide sharing is opt-in, and still never crosses tenants.
    tenant = f"t-{RUN}"
    await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-c", tenant, "tenant"))
    shared = await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-d", tenant, "tenant"))
    assert shared.cached
    foreign = await resources.llm.complete(
        Model(name="big"), QUESTION, scope=scope("c-d", f"g-{RUN}", "tenant")
    )
    assert not foreign.cached
    assert len(model_endpoint.requests) == 4


async def test_another_process_finds_the_answer_in_redis(
    resources: Resources, model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-redis"))
    other = Resources.from_settings(llm_settings(model_endpoint, redis_server))
    try:
        again = await other.llm.complete(Model(name="big"), QUESTION, scope=scope("c-redis"))
    finally:
        await other.close()
    assert again.cached
    assert other.cache.stats.redis_hits == 1
    assert len(model_endpoint.requests) == 1


async def test_rate_limits_are_retried_then_the_fallback_answers_and_every_attempt_is_traced(
    model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    made = Resources.from_settings(llm_settings(model_endpoint, redis_server), tracer_provider=provider)
    model_endpoint.fail(429, times=3, model="big", retry_after=0.01)
    try:
        answer = await made.llm.complete(Model(name="big", fallback="small"), QUESTION, scope=scope("c-429"))
    finally:
        await made.close()
    assert answer.model == "small"
    assert [r["model"] for r in model_endpoint.requests] == ["big", "big", "big", "small"]
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert [s.name for s in spans] == ["chat big", "chat big", "chat big", "chat small"]
    assert [s.attributes["error.type"] for s in spans[:3]] == ["RateLimitError"] * 3  # type: ignore[index]
    assert spans[3].attributes["hivewire.llm.fallback"] is True  # type: ignore[index]
    assert spans[3].attributes["gen_ai.usage.output_tokens"] == 7  # type: ignore[index]


async def test_a_server_error_is_retried_on_the_same_model(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.fail(500, times=1)
    answer = await resources.llm.complete(Model(name="big", fallback="small"), QUESTION, scope=scope("c-500"))
    assert answer.model == "big"
    assert len(model_endpoint.requests) == 2


async def test_when_every_model_keeps_failing_the_error_says_what_was_tried(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.fail(503, times=6)
    with pytest.raises(ModelUnavailable) as caught:
        await resources.llm.complete(Model(name="big", fallback="small"), QUESTION, scope=scope("c-down"))
    assert caught.value.models == ["big", "small"]
    assert caught.value.attempts == 6
    assert "HTTP 503" in caught.value.last_error


async def test_a_request_the_endpoint_refuses_is_not_retried(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.fail(400, times=1)
    with pytest.raises(LLMError, match="HTTP 400"):
        await resources.llm.complete(Model(name="big", fallback="small"), QUESTION, scope=scope("c-400"))
    assert len(model_endpoint.requests) == 1


async def test_streamed_tokens_arrive_in_order_with_usage_at_the_end(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("big", "one two three four")
    stream = resources.llm.stream(Model(name="big"), QUESTION, scope=scope("c-stream"))
    tokens = [token async for token in stream]
    assert tokens == ["one ", "two ", "three ", "four"]
    assert stream.completion is not None
    assert stream.completion.text == "one two three four"
    assert stream.completion.usage.output_tokens == 4
    again = resources.llm.stream(Model(name="big"), QUESTION, scope=scope("c-stream"))
    assert "".join([token async for token in again]) == "one two three four"
    assert again.completion is not None
    assert again.completion.cached


class Intent(msgspec.Struct, frozen=True):
    intent: str
    confidence: float


async def test_structured_output_comes_back_typed_or_as_a_clear_error(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.reply("big", '```json\n{"intent": "password_reset", "confidence": 0.93}\n```')
    intent = await resources.llm.structured(Model(name="big"), QUESTION, Intent, scope=scope("c-json"))
    assert intent == Intent(intent="password_reset", confidence=0.93)
    schema = model_endpoint.requests[-1]["response_format"]["json_schema"]["schema"]
    # The type's own schema at the root, as the API requires (msgspec's is a $ref into $defs).
    assert schema["type"] == "object"
    assert schema["required"] == ["intent", "confidence"]

    model_endpoint.reply("small", '{"intent": "billing"}')
    with pytest.raises(StructuredOutputError) as caught:
        await resources.llm.structured(Model(name="small"), QUESTION, Intent, scope=scope("c-json"))
    assert "missing required field `confidence`" in str(caught.value)
    assert caught.value.text == '{"intent": "billing"}'


class OrderQuery(msgspec.Struct, frozen=True):
    order_id: str
    include_items: bool = False


LOOKUP = Tool(name="lookup_order", description="Find an order by its id.", parameters=OrderQuery)


async def test_the_model_calls_a_tool_and_answers_from_its_result(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.call_tool("lookup_order", '{"order_id": "A-17"}')
    chat = [ChatMessage.user("Where is my order A-17?")]
    asked = await resources.llm.complete(Model(name="big"), chat, scope=scope("c-tool"), tools=[LOOKUP])
    assert asked.text == ""
    (call,) = asked.tool_calls
    assert call.name == "lookup_order"
    assert call.decode(OrderQuery) == OrderQuery(order_id="A-17")
    offered = model_endpoint.requests[-1]["tools"][0]
    assert offered["function"]["name"] == "lookup_order"
    assert offered["function"]["parameters"]["required"] == ["order_id"]

    chat += [asked.message, ChatMessage.tool(call, "shipped on Monday")]
    answer = await resources.llm.complete(Model(name="big"), chat, scope=scope("c-tool"), tools=[LOOKUP])
    assert answer.text == "tool said: shipped on Monday"
    assert answer.tool_calls == ()
    sent = model_endpoint.requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "content": "shipped on Monday", "tool_call_id": call.id}


async def test_a_streamed_tool_call_is_put_together_from_its_pieces(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    arguments = '{"order_id": "B-2048", "include_items": true}'
    model_endpoint.call_tool("lookup_order", arguments)
    stream = resources.llm.stream(
        Model(name="big"), QUESTION, scope=scope("c-tool-stream"), tools=[LOOKUP], tool_choice="lookup_order"
    )
    assert [token async for token in stream] == []
    assert stream.completion is not None
    (call,) = stream.completion.tool_calls
    assert call.arguments == arguments
    assert call.decode(OrderQuery) == OrderQuery(order_id="B-2048", include_items=True)
    forced = model_endpoint.requests[-1]["tool_choice"]
    assert forced == {"type": "function", "function": {"name": "lookup_order"}}


async def test_the_offered_tools_are_part_of_the_cache_key(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    other = Tool(name="refund_order", description="Refund an order.", parameters=OrderQuery)
    for tools in ([LOOKUP], [LOOKUP], [other], []):
        await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-tool-cache"), tools=tools)
    # The repeat with the same tool is a hit; another tool, or none, asks the model.
    assert len(model_endpoint.requests) == 3


async def test_bad_tool_arguments_and_a_tool_the_api_refuses_are_clear_errors(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.call_tool("lookup_order", '{"order": 17}')
    asked = await resources.llm.complete(
        Model(name="big"), QUESTION, scope=scope("c-tool-bad"), tools=[LOOKUP]
    )
    with pytest.raises(StructuredOutputError, match="missing required field `order_id`") as caught:
        asked.tool_calls[0].decode(OrderQuery)
    assert caught.value.text == '{"order": 17}'

    scalar = Tool(name="count", description="Takes a bare number.", parameters=int)
    with pytest.raises(LLMError, match=r"HTTP 400: .*must be a JSON Schema of .type: \"object\""):
        await resources.llm.complete(Model(name="big"), QUESTION, scope=scope("c-tool-bad"), tools=[scalar])


async def test_a_model_without_tool_calls_chooses_a_tool_through_schema_constrained_json(
    model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    made = Resources.from_settings(llm_settings(model_endpoint, redis_server, llm_tool_calls="json"))
    try:
        model_endpoint.reply("small", '{"tool": "lookup_order", "arguments": {"order_id": "A-17"}}')
        chat = [ChatMessage.user("Where is my order A-17?")]
        asked = await made.llm.complete(Model(name="small"), chat, scope=scope("c-json-tool"), tools=[LOOKUP])
        (call,) = asked.tool_calls
        assert call.decode(OrderQuery) == OrderQuery(order_id="A-17")
        assert asked.usage.modes == ("tools:json",)
        sent = model_endpoint.requests[-1]
        assert "tools" not in sent  # nothing the template cannot take
        choices = sent["response_format"]["json_schema"]["schema"]["anyOf"]
        assert [c["properties"].get("tool", {}).get("const") for c in choices] == ["lookup_order", None]
        assert "lookup_order: Find an order" in sent["messages"][0]["content"]

        # The tool's result goes back as text (no `tool` message), and the answer is plain text again.
        model_endpoint.reply("small", '{"answer": "It shipped on Monday."}')
        chat += [asked.message, ChatMessage.tool(call, "shipped on Monday")]
        stream = made.llm.stream(Model(name="small"), chat, scope=scope("c-json-tool"), tools=[LOOKUP])
        assert "".join([token async for token in stream]) == "It shipped on Monday."
        assert stream.completion is not None
        assert stream.completion.tool_calls == ()
        roles = [m["role"] for m in model_endpoint.requests[-1]["messages"]]
        assert roles == ["system", "user", "assistant", "user"]
        assert (
            model_endpoint.requests[-1]["messages"][3]["content"]
            == "Result of lookup_order: shipped on Monday"
        )

        # Forced: the schema allows only that tool; a reply outside the schema is a clear error.
        model_endpoint.reply("small", "I would rather chat.")
        with pytest.raises(StructuredOutputError, match="tool choice"):
            await made.llm.complete(
                Model(name="small"),
                QUESTION,
                scope=scope("c-json-forced"),
                tools=[LOOKUP],
                tool_choice="required",
            )
        forced = model_endpoint.requests[-1]["response_format"]["json_schema"]["schema"]["anyOf"]
        assert len(forced) == 1
    finally:
        await made.close()


async def test_an_endpoint_that_refuses_json_schemas_gets_json_mode_and_the_usage_says_so(
    resources: Resources, model_endpoint: OpenAIServer
) -> None:
    model_endpoint.refuse_json_schema("plain")
    model_endpoint.reply("plain", '{"intent": "account", "confidence": 0.9}')
    answer = await resources.llm.structured(Model(name="plain"), QUESTION, Intent, scope=scope("c-mode"))
    assert answer == Intent(intent="account", confidence=0.9)
    refused, asked = model_endpoint.requests
    assert refused["response_format"]["type"] == "json_schema"
    assert asked["response_format"] == {"type": "json_object"}
    assert '"required":["intent","confidence"]' in asked["messages"][0]["content"]
    # Learnt once: the next call goes straight to JSON mode, and its usage says which mode answered.
    completion = await resources.llm.complete_json(
        Model(name="plain"), [ChatMessage.user("again")], Intent, scope=scope("c-mode")
    )
    assert completion.usage.modes == ("structured:json_object",)
    assert len(model_endpoint.requests) == 3


async def test_tokens_and_cost_are_counted_per_tenant_agent_and_model(
    model_endpoint: OpenAIServer, redis_server: RedisServer
) -> None:
    reader = InMemoryMetricReader()
    made = Resources.from_settings(
        llm_settings(model_endpoint, redis_server), meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        await made.llm.complete(Model(name="big"), QUESTION, scope=scope("c-m1"))
        await made.llm.complete(Model(name="big"), QUESTION, scope=scope("c-m1"))  # cached: costs nothing
        await made.llm.complete(Model(name="small"), QUESTION, scope=scope("c-m2", tenant="globex"))
    finally:
        await made.close()
    data = reader.get_metrics_data()
    points = {
        (metric.name, tuple(sorted(dict(point.attributes or {}).items()))): point.value  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
        if metric.name != "gen_ai.client.operation.duration"  # a histogram: no single value
    }
    cost = {k[1]: v for k, v in points.items() if k[0] == "hivewire.llm.cost"}
    assert cost[(("agent", "answer"), ("gen_ai.response.model", "big"), ("tenant", "acme"))] == pytest.approx(
        (6 * 2.0 + 7 * 8.0) / 1_000_000
    )
    assert cost[
        (("agent", "answer"), ("gen_ai.response.model", "small"), ("tenant", "globex"))
    ] == pytest.approx((6 * 0.5 + 7 * 1.0) / 1_000_000)
    ratio = next(v for k, v in points.items() if k[0] == "hivewire.llm.cache.hit_ratio")
    assert ratio == pytest.approx(1 / 3)


async def test_offline_mode_answers_from_the_passages_and_says_so() -> None:
    made = Resources.from_settings(llm_settings(None, None))
    passages = [
        Passage(
            title="Resetting your password",
            source="kb/account/password.md",
            text="Open Settings and choose Security. Click Reset password and follow the emailed link. "
            "The link expires after 30 minutes.",
        ),
        Passage(title="Invoices", source="kb/billing/invoices.md", text="Invoices are emailed monthly."),
    ]
    try:
        assert made.llm.offline
        answer = await made.llm.complete(Model(name="big"), QUESTION, scope=scope(), passages=passages)
        nothing = await made.llm.complete(
            Model(name="big"), [ChatMessage.user("Who won the cup?")], scope=scope()
        )
        with pytest.raises(LLMError, match="offline mode cannot produce a structured Intent"):
            await made.llm.structured(Model(name="big"), QUESTION, Intent, scope=scope())
    finally:
        await made.close()
    assert answer.model == OFFLINE_MODEL
    assert answer.offline
    assert "offline mode" in answer.text
    assert "Click Reset password and follow the emailed link. [1]" in answer.text
    assert "[1] Resetting your password (kb/account/password.md)" in answer.text
    assert "Invoices" not in answer.text
    assert "found nothing in the knowledge base" in nothing.text


async def test_history_keeps_the_newest_turns_within_the_budget(resources: Resources) -> None:
    history = resources.history
    turns = [ChatMessage.user(f"question {i}") for i in range(5)]
    await history.append("acme", f"{RUN}-h-1", *turns)
    assert await history.load("acme", f"{RUN}-h-1", max_turns=3) == turns[-3:]
    # Each short turn is about 7 tokens: a budget of 15 keeps two.
    assert await history.load("acme", f"{RUN}-h-1", token_budget=15) == turns[-2:]
    assert await history.load("globex", f"{RUN}-h-1") == []


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to stop and restart")
async def test_redis_going_away_degrades_to_in_process_stores_and_comes_back(
    model_endpoint: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer() as redis:
        made = Resources.from_settings(llm_settings(model_endpoint, redis))
        try:
            await made.history.append("acme", "r-1", ChatMessage.user("before"))
            redis.stop()
            # Nothing hangs or fails: the in-process history and cache answer.
            await asyncio.wait_for(made.history.append("acme", "r-1", ChatMessage.user("during")), 2)
            assert [t.content for t in await made.history.load("acme", "r-1")] == ["before", "during"]
            first = await asyncio.wait_for(
                made.llm.complete(Model(name="big"), QUESTION, scope=scope("r-1")), 5
            )
            again = await made.llm.complete(Model(name="big"), QUESTION, scope=scope("r-1"))
            assert not made.redis.available
            assert again.cached
            assert "using in-process stores until it is back" in caplog.text
            assert not first.cached
            redis.restart()
            await asyncio.sleep(0.3)  # past the retry interval
            await made.history.append("acme", "r-2", ChatMessage.user("after"))
            assert made.redis.available
            assert "is back after" in caplog.text
            assert [t.content for t in await made.history.load("acme", "r-2")] == ["after"]
            assert await made.redis.run(lambda r: r.exists("hw:history:acme:r-2"), 0) == 1
        finally:
            await made.close()


def test_a_connection_closed_as_it_is_written_to_counts_as_redis_away() -> None:
    """Under uvloop (as agents and the gateway run), a connection Redis closed between being made
    and being written to fails with a RuntimeError of uvloop's, not a ConnectionError; a Redis
    restart met it in the fault suite, and the model turn failed. It is an outage like any other."""

    async def write_on_a_closed_connection(_: object) -> None:
        server = await asyncio.start_server(lambda _, theirs: theirs.close(), "127.0.0.1", 0)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            writer.transport.abort()
            await asyncio.sleep(0.01)  # uvloop closes the handle on a later turn of the loop
            writer.writelines([b"PING\r\n"])
        finally:
            server.close()
            await server.wait_closed()

    async def run() -> tuple[str, bool]:
        store = RedisStore("redis://127.0.0.1:1/0")
        try:
            return await store.run(write_on_a_closed_connection, "in process"), store.available
        finally:
            await store.close()

    assert uvloop.run(run()) == ("in process", False)


def test_an_offline_citation_numbers_the_passage_as_given() -> None:
    """[n] is the n-th passage, as a model is asked to cite: a client maps it to the same source."""
    passages = [
        Passage(title="Invoices", source="kb/billing/invoices.md", text="Invoices are emailed monthly."),
        Passage(
            title="Resetting your password",
            source="kb/account/password.md",
            text="Click Reset password and follow the emailed link.",
        ),
    ]
    answer = extractive_answer(list(QUESTION), passages)
    assert "Click Reset password and follow the emailed link. [2]" in answer.text
    assert "[2] Resetting your password (kb/account/password.md)" in answer.text
    if "[1]" in answer.text:
        assert "[1] Invoices (kb/billing/invoices.md)" in answer.text
