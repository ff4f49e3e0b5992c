"""How the children of ``hivewire up`` log: the options they get, and the relay of their lines to the
terminal, each marked with the process's name.

With ``--log-format text`` a line reads ``triage     | 2026-... WARNING agents...: ...``; with
``json`` it stays one JSON object per line, with the process named in ``"process"`` (a line the
child printed outside its logger, a traceback say, becomes ``{"process": ..., "message": ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import TextIO

from bus.logs import LOG_FORMATS, LOG_LEVELS

__all__ = ["ChildLogs", "child_logs"]

# The children's level unless --log-level (or HIVEWIRE_LOG_LEVEL) says otherwise: warnings and errors.
DEFAULT_LEVEL = "WARNING"
_NAME = 10  # the width of the name column in text lines


@dataclass(frozen=True)
class ChildLogs:
    """How the children log, and where their lines go."""

    level: str
    format: str
    out: TextIO = sys.stderr

    def args(self) -> list[str]:
        """The ``hivewire`` options that make a child log this way."""
        return ["--log-level", self.level, "--log-format", self.format]

    def relay(self, name: str, stream: asyncio.StreamReader) -> asyncio.Task[None]:
        """Pass the lines of ``stream`` (a child's standard error) on until it closes."""
        return asyncio.create_task(self._relay(name, stream), name=f"logs-{name}")

    async def _relay(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the reader's limit: pass on what fits
                raw = await stream.read(1 << 16)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line:
                self.out.write(self.mark(name, line) + "\n")
                self.out.flush()

    def mark(self, name: str, line: str) -> str:
        """``line`` marked as ``name``'s."""
        if self.format != "json":
            return f"{name.ljust(_NAME)}| {line}"
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = {"message": line}
        return json.dumps({"process": name, **record}, ensure_ascii=False)


def child_logs(args: argparse.Namespace) -> ChildLogs:
    """The children's log options: ``up --log-level/--log-format``, else ``HIVEWIRE_LOG_LEVEL`` (or
    warnings) and the format ``hivewire`` itself logs in."""
    level = getattr(args, "child_log_level", None) or os.environ.get("HIVEWIRE_LOG_LEVEL") or DEFAULT_LEVEL
    log_format = getattr(args, "child_log_format", None) or getattr(args, "log_format", None) or "text"
    level, log_format = level.upper(), log_format.lower()
    if level not in LOG_LEVELS:
        level = DEFAULT_LEVEL
    if log_format not in LOG_FORMATS:
        log_format = "text"
    return ChildLogs(level=level, format=log_format)
