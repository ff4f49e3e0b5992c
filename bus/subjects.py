"""Every NATS subject, queue group, stream and bucket name Hivewire uses, built in one place.

The scheme (documented in ``docs/subjects.md``) puts the tenant right after the
root, so a tenant's clients can be confined with NATS permissions to
``hw.<tenant>.>``, while agents, which serve every tenant, subscribe with a
wildcard in the tenant position::

    hw.<tenant>.agent.<agent>.<skill>     interactive request/reply (queue group per agent)
    hw.<tenant>.task.<agent>.<task>       durable task submission (JetStream work queue)
    hw.<tenant>.turn.<agent>.<turn>       a streamed conversation turn, run as durable work
    hw.<tenant>.ended.<turn>              a streamed turn that ended, for a gateway to record
    hw.<tenant>.cancel.<task>             cancellation of a durable task
    hw.<tenant>.ctx.<context>.events      a conversation's events: streamed chunks, task status
    hw.<tenant>.dlq.<agent>               dead letters of an agent's durable tasks

Key-value buckets hold the live agents (``hw_agents``), durable task records
(``hw_tasks``) and shared conversation state (``hw_state``); their keys are
built here too.

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
    "KEYS_BUCKET",
    "PUSH_BUCKET",
    "REDIS_ROOT",
    "REGISTRY_BUCKET",
    "ROOT",
    "SPANS_STREAM",
    "STATE_BUCKET",
    "TASKS_STREAM",
    "TASK_RECORDS_BUCKET",
    "TASK_RECORDS_STREAM",
    "AgentRoute",
    "agent_queue_group",
    "agent_request",
    "agent_requests_all_tenants",
    "agent_skill_all_tenants",
    "agent_tasks_all_tenants",
    "agent_turns_all_tenants",
    "all_spans",
    "all_tenants_cancels",
    "all_tenants_dead_letters",
    "all_tenants_ended_turns",
    "all_tenants_events",
    "all_tenants_tasks",
    "all_tenants_turns",
    "api_key_key",
    "cancel",
    "conversation_events",
    "conversation_index_key",
    "conversation_index_marker",
    "dead_letter",
    "dead_letters_matching",
    "ended_turn",
    "ended_turns_consumer",
    "history_key",
    "llm_cache_key",
    "parse_agent_request",
    "parse_cancel",
    "parse_conversation_events",
    "parse_ended_turn",
    "parse_queued_task",
    "parse_task",
    "parse_turn",
    "push_config_key",
    "push_configs_of",
    "push_consumer",
    "queued_task",
    "rate_limit_key",
    "registry_key",
    "span",
    "state_key",
    "state_key_every_context",
    "state_prefix",
    "task",
    "task_consumer",
    "task_record",
    "task_record_key",
    "tenant_events",
    "tenant_queued_tasks",
    "tenant_scope",
    "tenant_task_records",
    "token",
    "token_budget_key",
    "tool_cache_key",
    "turn",
    "turn_consumer",
    "usage_hour_key",
    "usage_key",
    "usage_writer_key",
]

ROOT = "hw"
REDIS_ROOT = "hw"
TASKS_STREAM = "HW_TASKS"
EVENTS_STREAM = "HW_EVENTS"
DEAD_LETTER_STREAM = "HW_DLQ"
SPANS_STREAM = "HW_SPANS"
REGISTRY_BUCKET = "hw_agents"
TASK_RECORDS_BUCKET = "hw_tasks"
# The stream behind the records bucket (JetStream names a bucket's stream KV_<bucket>).
TASK_RECORDS_STREAM = f"KV_{TASK_RECORDS_BUCKET}"
STATE_BUCKET = "hw_state"
KEYS_BUCKET = "hw_keys"
PUSH_BUCKET = "hw_push"

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


def agent_skill_all_tenants(agent: str, skill: str) -> str:
    """What every replica of ``agent`` subscribes to for one ``skill``, for every tenant."""
    return f"{ROOT}.*.agent.{token('agent', agent)}.{token('skill', skill)}"


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
    parts = _split(subject, "agent", (5,), "agent request subject")
    return AgentRoute(
        tenant=token("tenant", parts[1]),
        agent=token("agent", parts[3]),
        skill=token("skill", parts[4]),
    )


def task(tenant: str, agent: str, task_id: str) -> str:
    """Where durable task ``task_id`` for ``agent`` is queued (captured by the tasks stream).

    The task id is in the subject so a queued task can be found by it
    (:func:`queued_task`) before any replica has written its record.
    """
    return f"{ROOT}.{token('tenant', tenant)}.task.{token('agent', agent)}.{token('task id', task_id)}"


def queued_task(tenant: str, task_id: str) -> str:
    """The subject of a queued task, whichever agent it is for (a stream lookup by last subject)."""
    return f"{ROOT}.{token('tenant', tenant)}.task.*.{token('task id', task_id)}"


def parse_task(subject: str) -> tuple[str, str]:
    """Split a durable task subject into ``(tenant, agent)``.

    Subjects without the task id (queued before it was part of them) parse too.

    Raises:
        InvalidSubjectToken: ``subject`` is not a task subject.
    """
    parts = _split(subject, "task", (4, 5), "task subject")
    return token("tenant", parts[1]), token("agent", parts[3])


def all_tenants_tasks() -> str:
    """The subjects the durable tasks stream captures (with the task id, and the older form without)."""
    return f"{ROOT}.*.task.>"


def turn(tenant: str, agent: str, turn_id: str) -> str:
    """Where a streamed conversation turn for ``agent`` is queued (captured by the tasks stream).

    Turns have a subject (and a consumer) of their own so a chat turn never waits behind an
    agent's queue of durable tasks.
    """
    return f"{ROOT}.{token('tenant', tenant)}.turn.{token('agent', agent)}.{token('turn id', turn_id)}"


def parse_turn(subject: str) -> tuple[str, str]:
    """Split a turn subject into ``(tenant, agent)``.

    Raises:
        InvalidSubjectToken: ``subject`` is not a turn subject.
    """
    parts = _split(subject, "turn", (5,), "turn subject")
    return token("tenant", parts[1]), token("agent", parts[3])


def all_tenants_turns() -> str:
    """The turn subjects the durable tasks stream captures."""
    return f"{ROOT}.*.turn.>"


def agent_turns_all_tenants(agent: str) -> str:
    """The turns of ``agent`` for every tenant: its turn consumer's filter."""
    return f"{ROOT}.*.turn.{token('agent', agent)}.*"


def turn_consumer(agent: str) -> str:
    """The durable JetStream consumer whose turns the replicas of ``agent`` share."""
    return f"{ROOT}-turns-{token('agent', agent)}"


def ended_turn(tenant: str, turn_id: str) -> str:
    """Where a streamed turn that ended completed is queued for a gateway to record in its conversation."""
    return f"{ROOT}.{token('tenant', tenant)}.ended.{token('turn id', turn_id)}"


def parse_ended_turn(subject: str) -> str:
    """The tenant of an ended turn's subject.

    Raises:
        InvalidSubjectToken: ``subject`` is not an ended turn's subject.
    """
    parts = _split(subject, "ended", (4,), "ended turn subject")
    return token("tenant", parts[1])


def all_tenants_ended_turns() -> str:
    """The ended turns of every tenant: what the tasks stream captures, and the gateways' consumer reads."""
    return f"{ROOT}.*.ended.*"


def ended_turns_consumer() -> str:
    """The durable consumer whose ended turns the gateways share, each recorded by one of them."""
    return f"{ROOT}-ended-turns"


def cancel(tenant: str, task_id: str) -> str:
    """Where the cancellation of a durable task is announced."""
    return f"{ROOT}.{token('tenant', tenant)}.cancel.{token('task id', task_id)}"


def conversation_events(tenant: str, context_id: str) -> str:
    """Where a conversation's streamed chunks and task status events are published."""
    return f"{ROOT}.{token('tenant', tenant)}.ctx.{token('context id', context_id)}.events"


def parse_conversation_events(subject: str) -> tuple[str, str]:
    """Split a conversation events subject into ``(tenant, context_id)``.

    Raises:
        InvalidSubjectToken: ``subject`` is not a conversation events subject.
    """
    parts = _split(subject, "ctx", (5,), "events subject")
    if parts[4] != "events":
        raise InvalidSubjectToken("events subject", subject)
    return token("tenant", parts[1]), token("context id", parts[3])


def tenant_events(tenant: str) -> str:
    """Every conversation event of one tenant."""
    return f"{ROOT}.{token('tenant', tenant)}.ctx.*.events"


def all_tenants_events() -> str:
    """The subjects the conversation events stream captures."""
    return f"{ROOT}.*.ctx.*.events"


def dead_letter(tenant: str, agent: str) -> str:
    """Where a durable task that failed too often is parked, with the reason."""
    return f"{ROOT}.{token('tenant', tenant)}.dlq.{token('agent', agent)}"


def agent_tasks_all_tenants(agent: str) -> list[str]:
    """The durable tasks of ``agent`` for every tenant: its work-queue consumer's filters.

    The second is the form without the task id, so tasks queued by an older
    release are still run after an upgrade.
    """
    name = token("agent", agent)
    return [f"{ROOT}.*.task.{name}.*", f"{ROOT}.*.task.{name}"]


def task_consumer(agent: str) -> str:
    """The durable JetStream consumer whose messages the replicas of ``agent`` share."""
    return f"{ROOT}-tasks-{token('agent', agent)}"


def all_tenants_cancels() -> str:
    """What every agent replica listens to for cancellations of running tasks."""
    return f"{ROOT}.*.cancel.*"


def parse_cancel(subject: str) -> tuple[str, str]:
    """Split a cancellation subject into ``(tenant, task_id)``.

    Raises:
        InvalidSubjectToken: ``subject`` is not a cancellation subject.
    """
    parts = _split(subject, "cancel", (4,), "cancel subject")
    return token("tenant", parts[1]), token("task id", parts[3])


def all_tenants_dead_letters() -> str:
    """The subjects the dead-letter stream captures."""
    return f"{ROOT}.*.dlq.*"


def dead_letters_matching(tenant: str | None = None, agent: str | None = None) -> str:
    """A filter for the dead letters of one tenant and/or agent (``None`` matches any)."""
    t = "*" if tenant is None else token("tenant", tenant)
    a = "*" if agent is None else token("agent", agent)
    return f"{ROOT}.{t}.dlq.{a}"


def registry_key(agent: str, instance: str) -> str:
    """The registry key of one running replica of ``agent``."""
    return f"{token('agent', agent)}.{token('instance', instance)}"


def task_record_key(tenant: str, task_id: str) -> str:
    """The key of a durable task's record (its A2A ``Task``)."""
    return f"{token('tenant', tenant)}.{token('task id', task_id)}"


def task_record(tenant: str, task_id: str) -> str:
    """The subject a task's record is stored under in the records bucket's stream."""
    return f"$KV.{TASK_RECORDS_BUCKET}.{task_record_key(tenant, task_id)}"


def tenant_task_records(tenant: str) -> str:
    """Every task record of one tenant in the records bucket's stream (a listing's filter)."""
    return f"$KV.{TASK_RECORDS_BUCKET}.{token('tenant', tenant)}.*"


def tenant_queued_tasks(tenant: str) -> str:
    """Every queued task of one tenant in ``HW_TASKS`` (a listing's filter)."""
    return f"{ROOT}.{token('tenant', tenant)}.task.*.*"


def parse_queued_task(subject: str) -> str:
    """The task id in a queued task's subject.

    Raises:
        InvalidSubjectToken: ``subject`` is not a task subject with a task id.
    """
    parts = _split(subject, "task", (5,), "task subject")
    return token("task id", parts[4])


def push_config_key(tenant: str, task_id: str, config_id: str) -> str:
    """The key of one push notification config of a task (``hw_push``)."""
    return f"{token('tenant', tenant)}.{token('task id', task_id)}.{token('push config id', config_id)}"


def push_configs_of(tenant: str, task_id: str) -> str:
    """Every push notification config of one task (a key filter)."""
    return f"{token('tenant', tenant)}.{token('task id', task_id)}.*"


def push_consumer() -> str:
    """The durable consumer on ``HW_EVENTS`` whose messages the gateways share to push them to webhooks."""
    return f"{ROOT}-push"


def state_prefix(tenant: str, context_id: str) -> str:
    """The key prefix of one conversation's shared state."""
    return f"{token('tenant', tenant)}.{token('context id', context_id)}"


def state_key(tenant: str, context_id: str, key: str) -> str:
    """The key of one entry of a conversation's shared state."""
    return f"{state_prefix(tenant, context_id)}.{token('state key', key)}"


def state_key_every_context(tenant: str, key: str) -> str:
    """The entry ``key`` of every one of ``tenant``'s conversations (a key-value filter)."""
    return f"{token('tenant', tenant)}.*.{token('state key', key)}"


def span(trace_id: str, tenant: str | None) -> str:
    """Where a finished span of trace ``trace_id`` is kept (``HW_SPANS``): under its tenant if it
    has one (``hw.<tenant>.spans.<trace>``), else ``hw.spans.<trace>``.

    A tenant reads its part of a trace with one filter, and no other tenant's.
    """
    if tenant is None:
        return f"{ROOT}.spans.{token('trace id', trace_id)}"
    return f"{ROOT}.{token('tenant', tenant)}.spans.{token('trace id', trace_id)}"


def all_spans() -> list[str]:
    """The subjects the span store captures: spans with a tenant, and spans without."""
    return [f"{ROOT}.*.spans.*", f"{ROOT}.spans.*"]


# Redis keys: built here too, so every name Hivewire stores anywhere has one home.


def llm_cache_key(tenant: str, namespace: str, digest: str) -> str:
    """A cached model response; ``namespace`` is a conversation id or ``*`` (tenant-wide)."""
    scope = "*" if namespace == "*" else token("cache namespace", namespace)
    return f"{REDIS_ROOT}:llm:{token('tenant', tenant)}:{scope}:{token('digest', digest)}"


def tool_cache_key(tenant: str, tool: str, digest: str) -> str:
    """A cached tool result (the digest covers the tool's input and the data it read)."""
    return f"{REDIS_ROOT}:tool:{token('tenant', tenant)}:{token('tool', tool)}:{token('digest', digest)}"


def history_key(tenant: str, context_id: str) -> str:
    """A conversation's history (a Redis list of turns)."""
    return f"{REDIS_ROOT}:history:{token('tenant', tenant)}:{token('context id', context_id)}"


def history_writes_key(tenant: str, context_id: str) -> str:
    """The write ids a conversation's history has taken (a Redis sorted set), so a write
    retried after an ambiguous failure is not added twice."""
    return f"{history_key(tenant, context_id)}:writes"


def rate_limit_key(tenant: str) -> str:
    """A tenant's request rate limiter state (its GCRA theoretical arrival time)."""
    return f"{REDIS_ROOT}:rate:{token('tenant', tenant)}"


def token_budget_key(tenant: str, day: str) -> str:
    """LLM tokens a tenant used on ``day`` (``YYYYMMDD``, UTC)."""
    return f"{REDIS_ROOT}:tokens:{token('tenant', tenant)}:{token('day', day)}"


def usage_key(tenant: str) -> str:
    """A tenant's usage counters (a Redis hash: requests, tokens, cost)."""
    return f"{REDIS_ROOT}:usage:{token('tenant', tenant)}"


def usage_writer_key(writer: str) -> str:
    """The number of the last batch of usage counts a gateway replica (``writer``) wrote, so a
    batch written again after an ambiguous failure is added once."""
    return f"{REDIS_ROOT}:usage-writer:{token('writer', writer)}"


def usage_hour_key(tenant: str, hour: str) -> str:
    """A tenant's usage in one UTC hour (``YYYYMMDDHH``): the same fields as :func:`usage_key`."""
    return f"{REDIS_ROOT}:usage:{token('tenant', tenant)}:{token('hour', hour)}"


def conversation_index_key(tenant: str) -> str:
    """A tenant's conversations by last activity (a Redis sorted set: id scored by time)."""
    return f"{REDIS_ROOT}:conversations:{token('tenant', tenant)}"


def conversation_index_marker(tenant: str) -> str:
    """Set while the tenant's conversation index is known complete (it expires: the index is rebuilt)."""
    return f"{REDIS_ROOT}:conversations:{token('tenant', tenant)}:complete"


def api_key_key(digest: str) -> str:
    """An API key's entry in the keys bucket, by the key's SHA-256 digest (never the key)."""
    return token("key digest", digest)


def _split(subject: str, kind: str, sizes: tuple[int, ...], what: str) -> list[str]:
    """The tokens of ``subject``, which must be ``hw.<tenant>.<kind>...`` in one of ``sizes`` tokens.

    Raises:
        InvalidSubjectToken: it is not (``what`` names the subject expected).
    """
    parts = subject.split(".")
    if len(parts) not in sizes or parts[0] != ROOT or parts[2] != kind:
        raise InvalidSubjectToken(what, subject)
    return parts
