"""The data tables analysts query: CSV files in a folder, read again when they change.

A table is read whole (the sample tables are a few kilobytes) and kept until
its file's size or modification time changes. Its fingerprint is the SHA-256
of the bytes it was parsed from: the tool-result cache keys a query's result
by it, so a changed file makes every earlier result unreachable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from agents.errors import ToolError

__all__ = ["ColumnStats", "Table", "TableQuery", "TableRows", "Tables"]

_TOOL = "query_table"
_MAX_ROWS = 60


@dataclass(frozen=True, slots=True)
class Table:
    """One CSV file, parsed."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    fingerprint: str


class TableQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Rows of a table: those whose columns equal ``where``'s values (case-insensitive).

    Attributes:
        table: the table's name (``market_size``, with or without ``.csv``).
        where: column -> value; every one must match.
        columns: the columns to return (all when empty).
    """

    table: str
    where: dict[str, str] = msgspec.field(default_factory=dict)
    columns: list[str] = msgspec.field(default_factory=list)


class ColumnStats(msgspec.Struct, frozen=True, kw_only=True):
    """A numeric column over the matching rows, in file order (``first`` and ``last`` too)."""

    min: float
    max: float
    sum: float
    first: float
    last: float


class TableRows(msgspec.Struct, frozen=True, kw_only=True):
    """What a query found: the rows (at most 60), how many matched, and numeric columns' stats."""

    table: str
    columns: list[str]
    rows: list[list[str]]
    matched: int
    stats: dict[str, ColumnStats] = msgspec.field(default_factory=dict)

    def render(self) -> str:
        """The rows as the model reads them: a CSV table with its name and the stats."""
        head = f"[{self.table}] {self.matched} matching rows" + (
            f" (first {len(self.rows)} shown)" if self.matched > len(self.rows) else ""
        )
        lines = [head, ",".join(self.columns), *(",".join(row) for row in self.rows)]
        for column, stats in self.stats.items():
            lines.append(
                f"{column}: min {stats.min:g}, max {stats.max:g}, sum {stats.sum:g}, "
                f"first {stats.first:g}, last {stats.last:g}"
            )
        return "\n".join(lines)


class Tables:
    """The CSV tables of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[str, tuple[tuple[int, int], Table]] = {}

    def names(self) -> list[str]:
        """The tables there are, by name (file name without ``.csv``)."""
        return sorted(path.stem for path in self.folder.glob("*.csv"))

    def load(self, name: str) -> Table:
        """The table ``name`` as its file holds it now.

        Raises:
            ToolError: there is no such table.
        """
        stem = name.removesuffix(".csv")
        path = self.folder / f"{stem}.csv"
        if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
            raise ToolError(_TOOL, f"no table {name!r}; the tables are {', '.join(self.names())}")
        try:
            stat = os.stat(path)
        except OSError:
            raise ToolError(_TOOL, f"no table {name!r}; the tables are {', '.join(self.names())}") from None
        version = (stat.st_mtime_ns, stat.st_size)
        known = self._loaded.get(stem)
        if known is not None and known[0] == version:
            return known[1]
        data = path.read_bytes()
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        header = next(reader, [])
        table = Table(
            name=path.name,
            columns=tuple(header),
            rows=tuple(tuple(row) for row in reader if row),
            fingerprint=hashlib.sha256(data).hexdigest()[:32],
        )
        self._loaded[stem] = (version, table)
        return table

    def fingerprint(self, name: str) -> str:
        """The hash of the table's current content (raises as :meth:`load`)."""
        return self.load(name).fingerprint

    def query(self, query: TableQuery) -> TableRows:
        """Run ``query`` (raises :class:`ToolError` for an unknown table or column)."""
        table = self.load(query.table)
        index = {column.lower(): n for n, column in enumerate(table.columns)}
        for column in [*query.where, *query.columns]:
            if column.lower() not in index:
                raise ToolError(
                    _TOOL,
                    f"{table.name} has no column {column!r}; its columns are {', '.join(table.columns)}",
                )
        wanted = {index[column.lower()]: value.strip().lower() for column, value in query.where.items()}
        matching = [
            row
            for row in table.rows
            if all(n < len(row) and row[n].strip().lower() == value for n, value in wanted.items())
        ]
        shown = (
            [index[c.lower()] for c in query.columns] if query.columns else list(range(len(table.columns)))
        )
        return TableRows(
            table=table.name,
            columns=[table.columns[n] for n in shown],
            rows=[[row[n] if n < len(row) else "" for n in shown] for row in matching[:_MAX_ROWS]],
            matched=len(matching),
            stats=_stats(table.columns, shown, matching),
        )


def _stats(columns: tuple[str, ...], shown: list[int], rows: list[tuple[str, ...]]) -> dict[str, ColumnStats]:
    found: dict[str, ColumnStats] = {}
    for n in shown:
        try:
            values = [float(row[n]) for row in rows]
        except (ValueError, IndexError):
            continue
        if values and columns[n].lower() != "year":
            found[columns[n]] = ColumnStats(
                min=min(values), max=max(values), sum=sum(values), first=values[0], last=values[-1]
            )
    return found
