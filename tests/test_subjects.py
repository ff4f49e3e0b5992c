"""Subjects: one naming scheme, tenant first, with names that cannot break out of their token."""

from __future__ import annotations

import pytest

from bus import InvalidSubjectToken, subjects


def test_the_scheme() -> None:
    assert subjects.agent_request("acme", "triage", "classify") == "hw.acme.agent.triage.classify"
    assert subjects.agent_requests_all_tenants("triage") == "hw.*.agent.triage.*"
    assert subjects.agent_queue_group("triage") == "hw-agent-triage"
    assert subjects.task("acme", "triage", "t-1") == "hw.acme.task.triage.t-1"
    assert subjects.queued_task("acme", "t-1") == "hw.acme.task.*.t-1"
    assert subjects.cancel("acme", "t-1") == "hw.acme.cancel.t-1"
    assert subjects.conversation_events("acme", "c-9") == "hw.acme.ctx.c-9.events"
    assert subjects.dead_letter("acme", "triage") == "hw.acme.dlq.triage"
    assert subjects.tenant_scope("acme") == "hw.acme.>"
    assert subjects.turn("acme", "triage", "t-2") == "hw.acme.turn.triage.t-2"
    assert subjects.ended_turn("acme", "t-2") == "hw.acme.ended.t-2"


def test_turns_have_a_consumer_of_their_own_on_the_tasks_stream() -> None:
    # The two consumers of one agent on the work-queue stream must not overlap.
    assert subjects.agent_turns_all_tenants("triage") == "hw.*.turn.triage.*"
    assert subjects.agent_turns_all_tenants("triage") not in subjects.agent_tasks_all_tenants("triage")
    assert subjects.turn_consumer("triage") == "hw-turns-triage" != subjects.task_consumer("triage")
    assert subjects.ended_turns_consumer() == "hw-ended-turns"
    assert subjects.parse_turn("hw.acme.turn.triage.t-2") == ("acme", "triage")
    assert subjects.parse_ended_turn("hw.acme.ended.t-2") == "acme"
    for subject in ("hw.acme.task.triage.t-2", "hw.acme.turn.triage", "hw.acme.ended"):
        with pytest.raises(InvalidSubjectToken):
            subjects.parse_turn(subject)
        with pytest.raises(InvalidSubjectToken):
            subjects.parse_ended_turn(subject)


def test_every_tenant_subject_falls_under_the_tenant_scope() -> None:
    scope = subjects.tenant_scope("acme").removesuffix(">")
    for subject in (
        subjects.agent_request("acme", "a", "s"),
        subjects.task("acme", "a", "t"),
        subjects.turn("acme", "a", "t"),
        subjects.ended_turn("acme", "t"),
        subjects.cancel("acme", "t"),
        subjects.conversation_events("acme", "c"),
        subjects.dead_letter("acme", "a"),
    ):
        assert subject.startswith(scope)


def test_an_agent_request_subject_parses_back() -> None:
    route = subjects.parse_agent_request("hw.acme.agent.triage.classify")
    assert route == subjects.AgentRoute(tenant="acme", agent="triage", skill="classify")


@pytest.mark.parametrize("subject", ["hw.acme.task.triage", "other.acme.agent.a.s", "hw.acme.agent.a"])
def test_other_subjects_are_not_agent_requests(subject: str) -> None:
    with pytest.raises(InvalidSubjectToken):
        subjects.parse_agent_request(subject)


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "with space", "x" * 65, "tab\t", "ünï"])
def test_names_that_would_change_a_subject_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSubjectToken) as caught:
        subjects.agent_request(bad, "agent", "skill")
    assert caught.value.kind == "tenant"
    assert caught.value.value == bad
    assert isinstance(caught.value, ValueError)
