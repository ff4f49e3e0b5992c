"""The A2A data model: protocol JSON on the wire, lossless round trips, tolerant readers."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import (
    Artifact,
    Codec,
    MalformedPayload,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

codec = Codec()

ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
metadata = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
timestamps = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

parts = st.one_of(
    st.builds(Part.text_part, st.text(max_size=50), metadata=metadata),
    st.builds(Part.data_part, json_values.filter(lambda v: v is not None), metadata=metadata),
    st.builds(
        Part.file_part,
        raw=st.binary(max_size=40),
        filename=st.none() | st.text(max_size=12),
        media_type=st.none() | st.sampled_from(["image/png", "application/pdf"]),
    ),
    st.builds(Part.file_part, url=st.just("https://example.invalid/f.pdf")),
)
messages = st.builds(
    Message,
    message_id=ids,
    role=st.sampled_from(Role),
    parts=st.lists(parts, min_size=1, max_size=3).map(tuple),
    context_id=st.none() | ids,
    task_id=st.none() | ids,
    metadata=metadata,
    extensions=st.lists(st.text(max_size=10), max_size=2).map(tuple),
    reference_task_ids=st.lists(ids, max_size=2).map(tuple),
)
statuses = st.builds(
    TaskStatus, state=st.sampled_from(TaskState), message=st.none() | messages, timestamp=timestamps
)
artifacts = st.builds(
    Artifact,
    artifact_id=ids,
    parts=st.lists(parts, min_size=1, max_size=3).map(tuple),
    name=st.none() | st.text(max_size=10),
    description=st.none() | st.text(max_size=10),
    metadata=metadata,
)
tasks = st.builds(
    Task,
    id=ids,
    status=statuses,
    context_id=st.none() | ids,
    artifacts=st.lists(artifacts, max_size=2).map(tuple),
    history=st.lists(messages, max_size=2).map(tuple),
    metadata=metadata,
)
events = st.one_of(
    st.builds(StreamResponse, task=tasks),
    st.builds(StreamResponse, message=messages),
    st.builds(
        StreamResponse,
        status_update=st.builds(TaskStatusUpdateEvent, task_id=ids, status=statuses, context_id=ids),
    ),
    st.builds(
        StreamResponse,
        artifact_update=st.builds(
            TaskArtifactUpdateEvent,
            task_id=ids,
            artifact=artifacts,
            append=st.booleans(),
            last_chunk=st.booleans(),
        ),
    ),
)


@given(messages)
def test_messages_round_trip(message: Message) -> None:
    assert codec.decode(codec.encode(message), Message) == message


@given(tasks)
def test_tasks_round_trip(task: Task) -> None:
    assert codec.decode(codec.encode(task), Task) == task


@given(events)
def test_stream_events_round_trip(event: StreamResponse) -> None:
    assert codec.decode(codec.encode(event), StreamResponse) == event


def test_the_wire_uses_the_protocols_json_names_and_values() -> None:
    message = Message(
        message_id="m1",
        role=Role.USER,
        parts=(Part.text_part("hi"), Part.file_part(raw=b"\x00\x01", media_type="image/png")),
        context_id="c1",
        reference_task_ids=("t0",),
    )
    assert msgspec.json.decode(codec.encode(message)) == {
        "messageId": "m1",
        "role": "ROLE_USER",
        "parts": [{"text": "hi"}, {"raw": "AAE=", "mediaType": "image/png"}],
        "contextId": "c1",
        "referenceTaskIds": ["t0"],
    }
    status = TaskStatusUpdateEvent(task_id="t1", status=TaskStatus(state=TaskState.COMPLETED))
    assert msgspec.json.decode(codec.encode(StreamResponse(status_update=status))) == {
        "statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_COMPLETED"}}
    }


def test_standard_a2a_json_decodes_and_unknown_fields_are_ignored() -> None:
    wire = b"""{
        "id": "task-1", "contextId": "ctx-1", "futureField": {"from": "a newer peer"},
        "status": {"state": "TASK_STATE_WORKING", "timestamp": "2026-11-22T10:00:00Z"},
        "artifacts": [{"artifactId": "a1", "parts": [{"data": {"answer": 42}}]}],
        "history": [{"messageId": "m1", "role": "ROLE_AGENT", "parts": [{"url": "https://x.invalid/f",
                     "filename": "f.txt", "mediaType": "text/plain"}], "newField": 1}]
    }"""
    task = codec.decode(wire, Task)
    assert task.status.state is TaskState.WORKING
    assert task.status.timestamp == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert task.artifacts[0].parts[0].data == {"answer": 42}
    assert task.artifacts[0].parts[0].kind == "data"
    assert task.history[0].parts[0].kind == "file"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b'{"messageId": "m", "role": "ROLE_USER", "parts": [{}]}', "exactly one"),
        (
            b'{"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a", "url": "b"}]}',
            "exactly one",
        ),
        (b'{"messageId": "m", "role": "ROLE_ROBOT", "parts": []}', "Invalid enum value"),
        (b'{"role": "ROLE_USER", "parts": []}', "missing required field `messageId`"),
        (b'{"messageId": 7, "role": "ROLE_USER", "parts": []}', "Expected `str`"),
        (b"not json", "malformed"),
    ],
)
def test_invalid_messages_are_rejected_with_the_reason(wire: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        codec.decode(wire, Message)
    assert caught.value.expected == "Message"
    assert reason.lower() in str(caught.value).lower()


def test_a_stream_event_sets_exactly_one_member() -> None:
    with pytest.raises(MalformedPayload):
        codec.decode(b"{}", StreamResponse)
    with pytest.raises(ValueError, match="exactly one"):
        StreamResponse()


def test_terminal_states() -> None:
    assert {state for state in TaskState if state.terminal} == {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELED,
        TaskState.REJECTED,
    }


def test_message_text_joins_its_text_parts() -> None:
    message = Message(
        message_id="m",
        role=Role.AGENT,
        parts=(Part.text_part("one"), Part.data_part({"x": 1}), Part.text_part("two")),
    )
    assert message.text == "one\ntwo"
