"""Declaring agents: skills read their types from annotations, and mistakes fail at import time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import msgspec
import pytest

from agents import Agent, AgentDefinitionError, AgentLoadError, Context, load_agent
from agents.card import SKILL_SCHEMAS_EXTENSION, AgentCard
from agents.payloads import from_message, to_message
from bus import Message, Role
from tests.zoo import Numbers, Sum, echo


def test_the_card_lists_each_skill_with_its_modes_and_schemas() -> None:
    card = echo.card()
    assert (card.name, card.version) == ("echo", "1.2.0")
    add = card.skill("add")
    assert add is not None
    assert add.description == "Add two numbers."
    assert add.tags == ("math",)
    assert add.input_modes == ("application/json",)
    assert card.skill("shout").input_modes == ("text/plain",)  # type: ignore[union-attr]
    assert card.capabilities.streaming is True
    schemas = card.skill_schemas()
    assert schemas["add"].input["$defs"]["Numbers"]["required"] == ["a", "b"]
    assert schemas["count"].streaming is True
    assert schemas["shout"].streaming is False


def test_the_card_is_a2a_json_with_the_schemas_in_an_extension() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(echo.card()))
    assert {"name", "description", "version", "skills", "capabilities", "defaultInputModes"} <= set(wire)
    extension = wire["capabilities"]["extensions"][0]
    assert extension["uri"] == SKILL_SCHEMAS_EXTENSION
    assert "add" in extension["params"]
    # Tags are required by A2A: declared ones, else the skill's id.
    tags = {skill["id"]: skill["tags"] for skill in wire["skills"]}
    assert (tags["add"], tags["shout"]) == (["math"], ["shout"])
    assert msgspec.json.decode(msgspec.json.encode(echo.card()), type=AgentCard) == echo.card()


def test_typed_values_travel_as_data_parts_and_text_as_text_parts() -> None:
    data = to_message(Numbers(a=1, b=2), role=Role.USER, context_id="c")
    assert data.parts[0].data == {"a": 1, "b": 2}
    assert from_message(data, Numbers) == Numbers(a=1, b=2)
    text = to_message("hello", role=Role.USER)
    assert text.parts[0].text == "hello"
    assert from_message(text, str) == "hello"
    with pytest.raises(ValueError, match="expected a data part holding Sum, got parts text"):
        from_message(text, Sum)
    with pytest.raises(ValueError, match="Expected `int`"):
        from_message(to_message({"total": "many", "by": "x"}, role=Role.USER), Sum)
    # A text skill refuses a message with no text, rather than reading an empty one.
    with pytest.raises(ValueError, match="expected text, got parts data"):
        from_message(data, str)


def test_a_message_passes_through_and_joins_the_conversation() -> None:
    message = Message.user_text("hi")
    joined = to_message(message, role=Role.USER, context_id="c-9")
    assert joined.context_id == "c-9"
    assert joined.message_id == message.message_id


def test_skill_mistakes_are_caught_when_the_module_is_imported() -> None:
    agent = Agent("checked", description="d")

    with pytest.raises(AgentDefinitionError, match="must be `async def`"):

        @agent.skill
        def sync(ctx: Context, text: str) -> str:
            return text

    with pytest.raises(AgentDefinitionError, match="exactly two arguments"):

        @agent.skill
        async def three(ctx: Context, a: str, b: str) -> str:
            return a

    with pytest.raises(AgentDefinitionError, match="annotate the input"):

        @agent.skill
        async def untyped(ctx: Context, text) -> str:  # type: ignore[no-untyped-def]
            return str(text)

    with pytest.raises(AgentDefinitionError, match="annotate the return type"):

        @agent.skill
        async def no_return(ctx: Context, text: str):  # type: ignore[no-untyped-def]
            return text

    with pytest.raises(AgentDefinitionError, match="AsyncIterator"):

        @agent.skill
        async def gen(ctx: Context, text: str) -> str:  # type: ignore[misc]
            yield text

    with pytest.raises(AgentDefinitionError, match="cannot travel on the bus"):

        @agent.skill
        async def opaque(ctx: Context, value: object) -> str:
            return ""

    @agent.skill(id="same")
    async def one(ctx: Context, text: str) -> str:
        return text

    with pytest.raises(AgentDefinitionError, match="already declared"):

        @agent.skill(id="same")
        async def two(ctx: Context, text: str) -> str:
            return text

    with pytest.raises(AgentDefinitionError):
        Agent("no.dots", description="d")


def test_a_streaming_skill_is_an_async_generator() -> None:
    agent = Agent("streams", description="d")

    @agent.skill
    async def tokens(ctx: Context, n: int) -> AsyncIterator[str]:
        """Stream tokens."""
        yield "x"

    skill = agent.skills["tokens"]
    assert skill.streaming
    assert skill.input_type is int
    assert skill.output_type is str


def test_load_agent_explains_what_is_wrong() -> None:
    assert load_agent("tests.zoo:echo") is echo
    with pytest.raises(AgentLoadError, match="expected MODULE:ATTR"):
        load_agent("tests.zoo")
    with pytest.raises(AgentLoadError, match=r"cannot import 'tests\.nowhere'"):
        load_agent("tests.nowhere:agent")
    with pytest.raises(AgentLoadError, match=r"'Numbers' in 'tests\.zoo' is StructMeta, not an Agent"):
        load_agent("tests.zoo:Numbers")


def test_hivewire_agent_run_with_a_bad_target_exits_2_with_the_reason() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bus.cli", "agent", "run", "tests.zoo:missing"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "'missing' in 'tests.zoo' is NoneType, not an Agent" in done.stderr


def test_an_interface_always_names_its_binding_and_version() -> None:
    from agents.card import AgentInterface

    interface = AgentInterface(url="http://gw/a2a/echo", protocol_binding="JSONRPC", protocol_version="1.0")
    assert msgspec.json.decode(msgspec.json.encode(interface)) == {
        "url": "http://gw/a2a/echo",
        "protocolBinding": "JSONRPC",
        "protocolVersion": "1.0",
    }


def test_only_one_lifespan_can_be_declared() -> None:
    agent = Agent("with-resources", description="d")

    @agent.lifespan
    async def first(settings: object) -> AsyncIterator[str]:
        yield "resource"

    with pytest.raises(AgentDefinitionError, match="a lifespan is already declared"):

        @agent.lifespan
        async def second(settings: object) -> AsyncIterator[str]:
            yield "another"
