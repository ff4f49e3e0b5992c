"""Process logs: plain text for a terminal, or one JSON object per line naming the trace and the work.

``hivewire --log-format json`` (or ``HIVEWIRE_LOG_FORMAT=json``) makes every
record one line of JSON with the time, level, logger and message, the trace
and span ids of the span current when it was logged, and the tenant,
conversation and task it was logged for. A log line found in a log store thus
leads to the turn's trace (``GET /v1/traces/{id}``), and a trace to its lines.

Which tenant, conversation and task a piece of work is for is set where the
work starts, with :func:`bind` (the gateway once it knows the key, an agent
when a request or task reaches a skill). It is a context variable, like
OpenTelemetry's current span: asyncio copies it into the tasks a handler
starts, and it never leaks into another request's task.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Sequence

import msgspec
from opentelemetry import trace

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "LogFields", "bind", "configure_logging", "fields"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFields(msgspec.Struct, frozen=True, kw_only=True):
    """What the work being logged is for (``None``: not known here)."""

    tenant: str | None = None
    conversation_id: str | None = None
    task_id: str | None = None


_EMPTY = LogFields()
_current: contextvars.ContextVar[LogFields] = contextvars.ContextVar("hivewire_log_fields", default=_EMPTY)


def bind(
    *, tenant: str | None = None, conversation_id: str | None = None, task_id: str | None = None
) -> None:
    """Name the tenant, conversation and task of the work the current task does from here on.

    Fields left ``None`` keep what an outer caller bound. Set in the task that runs
    the work: tasks it starts afterwards inherit it, other requests' tasks never see it.
    """
    now = _current.get()
    _current.set(
        LogFields(
            tenant=tenant if tenant is not None else now.tenant,
            conversation_id=conversation_id if conversation_id is not None else now.conversation_id,
            task_id=task_id if task_id is not None else now.task_id,
        )
    )


def fields() -> LogFields:
    """What :func:`bind` set for the current task."""
    return _current.get()


class _Line(msgspec.Struct, omit_defaults=True):
    time: str
    level: str
    logger: str
    message: str
    trace_id: str | None = None
    span_id: str | None = None
    tenant: str | None = None
    conversation_id: str | None = None
    task_id: str | None = None
    exception: str | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the current span's ids and the bound :class:`LogFields`."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        context = trace.get_current_span().get_span_context()
        bound = _current.get()
        exception = None
        if record.exc_info:
            exception = self.formatException(record.exc_info)
        elif record.exc_text:
            exception = record.exc_text
        seconds = time.gmtime(record.created)
        line = _Line(
            time=f"{time.strftime('%Y-%m-%dT%H:%M:%S', seconds)}.{int(record.msecs):03d}Z",
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
            trace_id=format(context.trace_id, "032x") if context.is_valid else None,
            span_id=format(context.span_id, "016x") if context.is_valid else None,
            tenant=bound.tenant,
            conversation_id=bound.conversation_id,
            task_id=bound.task_id,
            exception=exception,
        )
        return self._encoder.encode(line).decode()


def configure_logging(level: str, log_format: str, *, handlers: Sequence[logging.Handler] = ()) -> None:
    """Log at ``level`` in ``log_format`` (``text`` or ``json``) to standard error (or ``handlers``).

    Raises:
        ValueError: an unknown level or format.
    """
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level {level!r}: choose from {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: choose from {', '.join(LOG_FORMATS)}")
    chosen = list(handlers) or [logging.StreamHandler()]
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in chosen:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=chosen, force=True)
