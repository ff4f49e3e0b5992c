"""The test OpenAI server speaks the protocol the real ``openai`` client expects."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from tests.openai_server import Answer, OpenAIServer

MODEL = "gpt-4o-mini"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
async def client(server: OpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real client, without its own retries so each failure surfaces as raised."""
    async with openai.AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0) as client:
        yield client


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def collect(client: openai.AsyncOpenAI, model: str, text: str) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=model, messages=user(text), stream=True, stream_options={"include_usage": True}
    )
    async with stream:
        return [chunk async for chunk in stream]


async def test_completion_echoes_the_last_user_message_and_counts_words(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
    )

    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 3)
    assert completion.usage.total_tokens == 12
    assert [body["model"] for body in server.requests] == [MODEL]


async def test_stream_sends_one_chunk_per_word_in_order_then_usage(client: openai.AsyncOpenAI) -> None:
    chunks = await collect(client, MODEL, "one two three")

    *words, stop, last = chunks
    deltas = [chunk.choices[0].delta for chunk in words]
    assert [delta.content for delta in deltas] == ["echo: ", "one ", "two ", "three"]
    assert [delta.role for delta in deltas] == ["assistant", None, None, None]
    assert stop.choices[0].finish_reason == "stop"
    assert stop.choices[0].delta.content is None
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (3, 4, 7)


async def test_stream_without_include_usage_ends_with_the_stop_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model=MODEL, messages=user("hi"), stream=True)
    async with stream:
        chunks = [chunk async for chunk in stream]

    assert [chunk.choices[0].delta.content for chunk in chunks[:-1]] == ["echo: ", "hi"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


async def test_rate_limit_raises_with_retry_after_and_the_next_request_succeeds(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.fail(429, retry_after=1)

    with pytest.raises(openai.RateLimitError) as raised:
        await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "1"
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "rate_limit_exceeded"

    completion = await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert completion.choices[0].message.content == "echo: hi"
    assert len(server.requests) == 2, "failed requests are recorded too"


async def test_server_error_fails_the_given_number_of_times(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.fail(500, times=2)

    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=MODEL, messages=user("hi"))
    await client.chat.completions.create(model=MODEL, messages=user("hi"))


async def test_a_failure_for_one_model_spares_the_others(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.fail(503, model="gpt-4o")

    other = await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert other.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert raised.value.status_code == 503
    await client.chat.completions.create(model="gpt-4o", messages=user("hi"))


async def test_streamed_requests_fail_before_any_chunk(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.fail(429)

    with pytest.raises(openai.RateLimitError):
        await collect(client, MODEL, "hi")


async def test_canned_reply_for_a_model(server: OpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.reply("planner", "step one\nstep two")

    completion = await client.chat.completions.create(model="planner", messages=user("plan"))
    chunks = await collect(client, "planner", "plan")
    echoed = await client.chat.completions.create(model=MODEL, messages=user("plan"))

    assert completion.choices[0].message.content == "step one\nstep two"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == "step one\nstep two"
    assert echoed.choices[0].message.content == "echo: plan"


async def test_clear_forgets_requests_failures_and_replies(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.reply(MODEL, "canned")
    server.fail(500)
    server.clear()

    completion = await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert completion.choices[0].message.content == "echo: hi"
    assert len(server.requests) == 1


async def test_latency_delays_the_first_byte(server: OpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.latency = 0.3
    started = time.monotonic()
    await collect(client, MODEL, "hi")
    assert time.monotonic() - started >= 0.3


async def test_models_are_listed(client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert MODEL in models


async def test_a_stopped_server_is_a_connection_error(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    await client.chat.completions.create(model=MODEL, messages=user("hi"))
    server.stop()

    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=user("hi"))


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_malformed_json_is_a_400_with_an_openai_error(server: OpenAIServer) -> None:
    status, body = post(server.url + "/chat/completions", b"{not json")

    assert status == 400
    assert isinstance(body["error"], dict)
    assert body["error"]["type"] == "invalid_request_error"
    assert server.requests == []


def test_unknown_path_is_a_404(server: OpenAIServer) -> None:
    status, body = post(server.url + "/embeddings", b"{}")

    assert status == 404
    assert "error" in body


async def test_tool_calls_come_as_the_real_api_sends_them_and_malformed_tool_use_is_refused(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    tool: openai.types.chat.ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    server.call_tool("lookup", "{}")
    completion = await client.chat.completions.create(model=MODEL, messages=user("where?"), tools=[tool])
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("lookup", "{}")

    orphan: list[ChatCompletionMessageParam] = [
        *user("where?"),
        {"role": "tool", "tool_call_id": "call_unknown", "content": "here"},
    ]
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message"):
        await client.chat.completions.create(model=MODEL, messages=orphan)
    flat: openai.types.chat.ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "string"}},
    }
    with pytest.raises(openai.BadRequestError, match="Invalid schema for function 'lookup'"):
        await client.chat.completions.create(model=MODEL, messages=user("where?"), tools=[flat])


async def test_a_scripted_model_answers_by_content_with_parallel_tool_calls(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    def model(body: dict[str, object]) -> Answer | None:
        if "weather" not in str(body["messages"]):
            return None  # the echo, as without a script
        return Answer(tool_calls=(("forecast", '{"city": "Oslo"}'), ("forecast", '{"city": "Lisbon"}')))

    server.respond_with(model)
    tool: openai.types.chat.ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "forecast", "parameters": {"type": "object", "properties": {}}},
    }
    completion = await client.chat.completions.create(model=MODEL, messages=user("weather?"), tools=[tool])
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls if c.type == "function"] == [
        ("forecast", '{"city": "Oslo"}'),
        ("forecast", '{"city": "Lisbon"}'),
    ]
    stream = await client.chat.completions.create(
        model=MODEL, messages=user("weather?"), tools=[tool], stream=True
    )
    pieces: dict[int, str] = {}
    async with stream:
        async for chunk in stream:
            for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                arguments = delta.function.arguments if delta.function is not None else None
                pieces[delta.index] = pieces.get(delta.index, "") + (arguments or "")
    assert pieces == {0: '{"city": "Oslo"}', 1: '{"city": "Lisbon"}'}
    echoed = await client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert echoed.choices[0].message.content == "echo: hi"


async def test_a_latency_range_gives_each_request_its_own_repeatable_wait(
    server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.latency = (0.2, 0.4)
    bodies = [{"model": MODEL, "messages": user(text)} for text in ("one", "two", "three")]
    waits = [server.latency_for(body) for body in bodies]
    assert all(0.2 <= wait <= 0.4 for wait in waits)
    assert len(set(waits)) == 3
    assert server.latency_for({"messages": user("one"), "model": MODEL}) == waits[0]  # key order aside
    started = time.monotonic()
    await client.chat.completions.create(model=MODEL, messages=user("one"))
    assert time.monotonic() - started >= 0.2
