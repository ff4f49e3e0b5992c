"""Every NATS subject, queue group, stream and bucket name Hivewire uses, built in one place.

The scheme (documented in ``docs/subjects.md``) puts the tenant right after the
root, so a tenant's clients can be confined with NATS permissions to
``hw.<tenant>.>``, while agents, which serve every tenant, subscribe with a
wildcard in the tenant position::

    hw.<tenant>.agent.<agent>.<skill>     interactive request/reply (queue group per agent)
    hw.<tenant>.task.<agent>              durable task submission (JetStream work queue)
    hw.<tenant>.cancel.<task>             cancellation of a durable task
    hw.<tenant>.ctx.<context>.events      a conversation's events: streamed chunks, task status
    hw.<tenant>.dlq.<agent>               dead letters of an agent's durable tasks

Names used as subject tokens are validated here, so no caller can smuggle a
``.``, ``*`` or ``>`` into a subject.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bus.errors import InvalidSubjectToken

__all__ = [
    "DEAD_LETTER_STREAM",
    "EVENTS_STREAM",
    "REGISTRY_BUCKET",
    "ROOT",
    "TASKS_STREAM",
    "AgentRoute",
    "agent_queue_group",
    "agent_request",
    "agent_requests_all_tenants",
    "all_tenants_events",
    "all_tenants_tasks",
    "cancel",
    "conversation_events",
    "dead_letter",
    "parse_agent_request",
    "task",
    "tenant_scope",
    "token",
]

ROOT = "hw"
TASKS_STREAM = "HW_TASKS"
EVENTS_STREAM = "HW_EVENTS"
DEAD_LETTER_STREAM = "HW_DLQ"
REGISTRY_BUCKET = "hw_agents"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def token(kind: str, value: str) -> str:
    """Return ``value`` if it is safe as one subject token.

    Raises:
        InvalidSubjectToken: it is empty, too long, or holds other characters.
    """
    if _TOKEN.fullmatch(value) is None:
        raise InvalidSubjectToken(kind, value)
    return value


def tenant_scope(tenant: str) -> str:
    """Everything a tenant owns: the subject to grant in that tenant's NATS permissions."""
    return f"{ROOT}.{token('tenant', tenant)}.>"


def agent_request(tenant: str, agent: str, skill: str) -> str:
    """Where an interactive request to ``agent``'s ``skill`` is sent."""
    return f"{ROOT}.{token('tenant', tenant)}.agent.{token('agent', agent)}.{token('skill', skill)}"


def agent_requests_all_tenants(agent: str) -> str:
    """What every replica of ``agent`` subscribes to: its skills, for every tenant."""
    return f"{ROOT}.*.agent.{token('agent', agent)}.*"


def agent_queue_group(agent: str) -> str:
    """The queue group that makes the replicas of ``agent`` share its requests."""
    return f"{ROOT}-agent-{token('agent', agent)}"


class AgentRoute(NamedTuple):
    """The parts of an agent request subject."""

    tenant: str
    agent: str
    skill: str


def parse_agent_request(subject: str) -> AgentRoute:
    """Split an agent request subject into tenant, agent and skill.

    Raises:
        InvalidSubjectToken: ``subject`` is not an agent request subject.
    """
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != ROOT or parts[2] != "agent":
        raise InvalidSubjectToken("agent request subject", subject)
    return AgentRoute(
        tenant=token("tenant", parts[1]),
        agent=token("agent", parts[3]),
        skill=token("skill", parts[4]),
    )


def task(tenant: str, agent: str) -> str:
    """Where a durable task for ``agent`` is submitted (captured by the tasks stream)."""
    return f"{ROOT}.{token('tenant', tenant)}.task.{token('agent', agent)}"


def all_tenants_tasks() -> str:
    """The subjects the durable tasks stream captures."""
    return f"{ROOT}.*.task.*"


def cancel(tenant: str, task_id: str) -> str:
    """Where the cancellation of a durable task is announced."""
    return f"{ROOT}.{token('tenant', tenant)}.cancel.{token('task id', task_id)}"


def conversation_events(tenant: str, context_id: str) -> str:
    """Where a conversation's streamed chunks and task status events are published."""
    return f"{ROOT}.{token('tenant', tenant)}.ctx.{token('context id', context_id)}.events"


def all_tenants_events() -> str:
    """The subjects the conversation events stream captures."""
    return f"{ROOT}.*.ctx.*.events"


def dead_letter(tenant: str, agent: str) -> str:
    """Where a durable task that failed too often is parked, with the reason."""
    return f"{ROOT}.{token('tenant', tenant)}.dlq.{token('agent', agent)}"
