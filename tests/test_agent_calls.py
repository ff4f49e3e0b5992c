"""Calling agents that run in their own processes: typed skills, streams, failures, deadlines, hops."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from agents import AgentSettings, Call, Failed, HopLimitExceeded, Mesh, Ok
from bus import (
    Bus,
    ErrorCode,
    NoResponders,
    RemoteError,
    RequestTimeout,
    StreamResponse,
    TaskState,
    subjects,
)
from bus.envelope import Envelope
from tests.processes import agent_process
from tests.task_events import hearing
from tests.zoo import Counter, Numbers, Sum

pytestmark = pytest.mark.usefixtures("echo_agent")


@pytest.fixture(scope="module")
async def echo_agent(nats_server):  # type: ignore[no-untyped-def]
    async with agent_process(nats_server.url, "tests.zoo:echo") as process:
        yield process


async def test_typed_skill_takes_and_returns_structs(mesh: Mesh) -> None:
    caller = mesh.caller("acme")
    total = await caller.call("echo", "add", Numbers(a=2, b=40), Sum)
    assert total.total == 42
    assert total.by.startswith("echo:")


async def test_text_skill_takes_and_returns_text(mesh: Mesh) -> None:
    assert await mesh.caller("acme").call("echo", "shout", "hello mesh", str) == "HELLO MESH"


async def test_reply_is_an_a2a_message_in_the_callers_conversation(mesh: Mesh) -> None:
    caller = mesh.caller("acme", context_id="conv-1")
    reply = await caller.call("echo", "shout", "hi")
    assert reply.role.value == "ROLE_AGENT"
    assert reply.context_id == "conv-1"
    assert reply.text == "HI"


async def test_streaming_skill_yields_chunks_in_order(mesh: Mesh) -> None:
    chunks: list[str] = []
    async with mesh.caller("acme").stream("echo", "count", 5) as events:
        async for event in events:
            assert isinstance(event, StreamResponse)
            chunks.append(event.artifact_update.artifact.parts[0].text)  # type: ignore[union-attr,arg-type]
    assert "".join(chunks) == "1 2 3 4 5 "


async def test_input_of_the_wrong_shape_is_a_bad_request(mesh: Mesh) -> None:
    with pytest.raises(RemoteError) as caught:
        await mesh.caller("acme").call("echo", "add", "two and two", Sum)
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert "expected a data part holding Numbers" in caught.value.message


async def test_unknown_agent_and_unknown_skill_have_no_responders(mesh: Mesh) -> None:
    caller = mesh.caller("acme")
    with pytest.raises(NoResponders):
        await caller.call("nobody", "anything", "hi")
    with pytest.raises(NoResponders):
        await caller.call("echo", "no_such_skill", "hi")


async def test_a_skill_whose_callee_has_no_replica_fails_unavailable_not_internal(mesh: Mesh) -> None:
    with pytest.raises(RemoteError) as caught:
        await mesh.caller("acme").call("echo", "ask_absent", "hi")
    # The caller may try again once "absent" is back: not a bug of echo's.
    assert caught.value.code == ErrorCode.UNAVAILABLE
    expected = "agent 'absent' has no live replica serving 'ping' right now (hw.acme.agent.absent.ping)"
    assert caught.value.message == expected


async def test_a_handlers_typed_error_reaches_the_caller_with_its_code(mesh: Mesh) -> None:
    with pytest.raises(RemoteError) as caught:
        await mesh.caller("acme").call("echo", "broken", "fly")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert caught.value.message == "cannot fly right now"


async def test_a_callee_never_gets_more_time_than_its_caller_has_left(mesh: Mesh) -> None:
    # relay -> deadline: the second hop sees less than the 2 s the caller gave the first.
    seen = await mesh.caller("acme").call("echo", "remaining_downstream", "x", float, timeout=2.0)
    assert 0 < seen < 2.0


async def test_a_slow_skill_times_out_at_the_callers_deadline(mesh: Mesh) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await mesh.caller("acme").call("echo", "nap", 5.0, str, timeout=0.3)
    assert time.monotonic() - started < 2.0


async def test_a_call_waits_until_the_callers_deadline_not_the_default_timeout(
    agent_settings: AgentSettings,
) -> None:
    # A gateway turn's caller has 60 s; the bus's default request timeout (10 s) must not cut it short.
    hasty = agent_settings.model_copy(update={"nats_request_timeout": 0.3})
    bus = await Bus.connect(hasty, name="test-patient")
    try:
        caller = (await Mesh.open(bus, hasty)).caller("acme", timeout=5)
        assert (await caller.call("echo", "nap", 0.8, str)).startswith("slept 0.8s")
    finally:
        await bus.close()


async def test_a_loop_between_agents_stops_at_the_hop_limit(mesh: Mesh) -> None:
    with pytest.raises(RemoteError) as caught:
        await mesh.caller("acme").call("echo", "loop", "round and round", str)
    assert caught.value.code == ErrorCode.HOP_LIMIT_EXCEEDED
    assert "exceed the limit of 8" in caught.value.message


async def test_a_message_over_the_hop_limit_is_refused_by_the_callee(mesh: Mesh) -> None:
    subject = subjects.agent_request("acme", "echo", "shout")
    from agents.payloads import to_message
    from bus import Message, Role

    with pytest.raises(RemoteError) as caught:
        await mesh.bus.request(
            subject, to_message("hi", role=Role.USER), Message, envelope=Envelope(tenant="acme", hops=99)
        )
    assert caught.value.code == ErrorCode.HOP_LIMIT_EXCEEDED


async def test_caller_refuses_to_send_past_the_hop_limit(mesh: Mesh) -> None:
    caller = mesh.caller("acme")
    caller.hops = caller.max_hops + 1
    with pytest.raises(HopLimitExceeded):
        await caller.call("echo", "shout", "hi")


async def test_fan_out_returns_what_arrived_in_time_and_typed_errors_for_the_rest(mesh: Mesh) -> None:
    caller = mesh.caller("acme")
    started = time.monotonic()
    results = await caller.gather(
        Call("echo", "add", Numbers(a=1, b=1), Sum),
        Call("echo", "nap", 3.0, str),
        Call("nobody", "anything", "hi"),
        Call("echo", "shout", "fast", str),
        timeout=0.5,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "the fan-out must not wait past its deadline"
    add, nap, nobody, shout = results
    assert isinstance(add, Ok)
    assert add.value == Sum(total=2, by=add.value.by)
    assert isinstance(nap, Failed)
    assert isinstance(nap.error, RequestTimeout)
    assert isinstance(nobody, Failed)
    assert isinstance(nobody.error, NoResponders)
    assert isinstance(shout, Ok)
    assert shout.value == "FAST"


async def test_an_agent_fans_out_inside_a_skill(mesh: Mesh) -> None:
    assert await mesh.caller("acme").call("echo", "fan", 3.0, list[str]) == ["ok:3", "failed:timeout"]


async def test_a_pipeline_feeds_each_reply_to_the_next_step(mesh: Mesh) -> None:
    steps = [Call("echo", "relay"), Call("echo", "add")]
    # relay(2, 3) -> Sum(5) is not Numbers, so the second step refuses it: the
    # failure of a step is the pipeline's failure.
    with pytest.raises(RemoteError):
        await mesh.caller("acme").pipeline(steps, Numbers(a=2, b=3), Sum)
    shouted = await mesh.caller("acme").pipeline([Call("echo", "shout"), Call("echo", "shout")], "quiet", str)
    assert shouted == "QUIET"


async def test_shared_state_is_one_blackboard_per_conversation(mesh: Mesh) -> None:
    first = mesh.caller("acme", context_id="board-1")
    other = mesh.caller("acme", context_id="board-2")
    results = await asyncio.gather(*(first.call("echo", "incr", "visits", Counter) for _ in range(10)))
    # Ten concurrent read-modify-writes: optimistic concurrency loses none.
    assert sorted(r.value for r in results) == list(range(1, 11))
    assert await other.call("echo", "incr", "visits", Counter) == Counter(value=1)
    state = mesh.state("acme", "board-1")
    stored = await state.get("visits", Counter)
    assert stored is not None
    assert stored.value == Counter(value=10)
    assert await state.keys() == ["visits"]
    assert await mesh.state("other-tenant", "board-1").get("visits", Counter) is None


async def test_what_a_callee_streams_belongs_to_the_task_of_the_skill_that_called_it(mesh: Mesh) -> None:
    received: list[StreamResponse] = []
    async with hearing(mesh, subjects.conversation_events("acme", "conv-spell"), received.append):
        task = await mesh.tasks.submit("acme", "echo", "spell_via", "abc", context_id="conv-spell")
        done = await mesh.tasks.wait("acme", task.id, timeout=10)
        await asyncio.sleep(0.2)
    assert done.status.state is TaskState.COMPLETED
    letters = [e.artifact_update for e in received if not isinstance(e.artifact_update, msgspec.UnsetType)]
    # A client following the task (A2A's SendStreamingMessage, say) sees the letters stream.
    assert [u.artifact.parts[0].text for u in letters] == ["a", "b", "c"]
    assert {u.task_id for u in letters} == {task.id}


async def test_status_updates_go_to_the_conversation_event_subject(mesh: Mesh) -> None:
    received: asyncio.Queue[StreamResponse] = asyncio.Queue()

    async with hearing(mesh, subjects.conversation_events("acme", "conv-ev"), received.put_nowait):
        await mesh.tasks.submit("acme", "jobs", "work", {"n": 1}, context_id="conv-ev")
        event = await asyncio.wait_for(received.get(), 5)
    assert event.status_update is not None
    assert event.status_update.status.state is TaskState.SUBMITTED
