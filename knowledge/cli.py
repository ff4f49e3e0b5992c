"""``hivewire knowledge ingest|search|stats|delete``: manage a tenant's knowledge from the shell.

While a mesh runs (``hivewire up`` from the data folder, or ``--nats-url`` /
``HIVEWIRE_NATS_URL``), every action goes through the knowledge agent over the
bus, so what is ingested is found by the running desk at once. With no mesh,
the command opens the store itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import uvloop

from bus.cli import add_mesh_arguments
from bus.errors import PayloadTooLarge
from knowledge.documents import UnsupportedDocument, document_files, read_document
from knowledge.errors import KnowledgeError

if TYPE_CHECKING:
    from knowledge.chunking import Chunk
    from knowledge.store import Hit, IngestResult, Stats

__all__ = ["knowledge_command"]


def knowledge_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``hivewire knowledge``."""
    parser = commands.add_parser(
        "knowledge", help="ingest and search knowledge bases", description="A tenant's knowledge bases."
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    ingest = actions.add_parser("ingest", help="add or update documents (a file or a folder)")
    ingest.add_argument("path", type=Path)
    _scope(ingest)
    ingest.set_defaults(run=_ingest)

    search = actions.add_parser("search", help="the passages closest in meaning to a query")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    search.add_argument("--min-score", type=float, help="drop passages less similar than this (0..1)")
    search.add_argument("--json", action="store_true")
    _scope(search)
    search.set_defaults(run=_search)

    stats = actions.add_parser("stats", help="how many passages and documents a knowledge base holds")
    _scope(stats)
    stats.set_defaults(run=_stats)

    delete = actions.add_parser("delete", help="remove a document's passages")
    delete.add_argument("source", help="the document's source, as `stats` or `search` show it")
    _scope(delete)
    delete.set_defaults(run=_delete)


def _scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant", help="whose knowledge (default: the tenant of the mesh `hivewire up` runs, `local`)"
    )
    parser.add_argument("--kb", help="knowledge base (default HIVEWIRE_KNOWLEDGE_BASE or 'default')")
    add_mesh_arguments(parser)


class _Store(Protocol):
    """What the commands use: the store in this process, or the running knowledge agent."""

    async def ingest(self, tenant: str, kb: str, source: str, chunks: list[Chunk]) -> IngestResult: ...

    async def search(
        self, tenant: str, kb: str, query: str, *, k: int = 5, min_score: float | None = None
    ) -> list[Hit]: ...

    async def stats(self, tenant: str, kb: str) -> Stats: ...

    async def delete_source(self, tenant: str, kb: str, source: str) -> int: ...


class _Usage(Exception):
    """A command given too little to act on (exit code 2)."""


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[tuple[_Store, str]]:
    # Imported here: Chroma, the embedder and the NATS client load only for commands that use them.
    from bus import local
    from knowledge.settings import KnowledgeSettings

    settings = local.settings_for(args, KnowledgeSettings)
    kb = args.kb or settings.knowledge_base
    if args.tenant is None:
        mesh = local.running(settings.data_dir)
        if mesh is None or not mesh.tenant:
            raise _Usage("give --tenant (no mesh of `hivewire up` runs from here to take its tenant from)")
        args.tenant = mesh.tenant
    if settings.nats_url is None:
        from knowledge.store import KnowledgeStore

        store = KnowledgeStore.from_settings(settings)
        try:
            yield store, kb
        finally:
            await store.close()
        return
    from agents.mesh import Mesh
    from agents.settings import AgentSettings
    from bus.client import Bus
    from knowledge.remote import RemoteStore

    agent_settings = local.settings_for(args, AgentSettings)
    print(f"(through the knowledge agent of the mesh at {settings.nats_url})", file=sys.stderr)
    bus = await Bus.connect(agent_settings, name="hivewire-knowledge")
    try:
        yield RemoteStore(await Mesh.open(bus, agent_settings), timeout=30.0), kb
    finally:
        await bus.close()


def _ingest(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _open(args) as (store, kb):
            return await _ingest_files(args, store, kb)

    return _run(main)


async def _ingest_files(args: argparse.Namespace, store: _Store, kb: str) -> int:
    """Ingest a file or a folder, one line of progress per document on stderr."""
    files = list(document_files(args.path))
    root = args.path if args.path.is_dir() else args.path.parent
    totals = [0, 0, 0]
    failed = 0
    for n, path in enumerate(files, 1):
        source = path.relative_to(root).as_posix()
        try:
            result = await store.ingest(args.tenant, kb, source, read_document(path, source=source))
        except UnsupportedDocument as exc:
            failed += 1
            print(f"[{n}/{len(files)}] {exc}", file=sys.stderr)
            continue
        except PayloadTooLarge as exc:  # through the agent: one message per document
            failed += 1
            print(
                f"[{n}/{len(files)}] {source}: too large to send to the knowledge agent ({exc})",
                file=sys.stderr,
            )
            continue
        totals = [totals[0] + result.added, totals[1] + result.removed, totals[2] + result.unchanged]
        print(
            f"[{n}/{len(files)}] {source}: +{result.added} -{result.removed} ={result.unchanged}",
            file=sys.stderr,
            flush=True,
        )
    added, removed, unchanged = totals
    print(
        f"{len(files) - failed} documents: {added} passages added, {removed} removed, {unchanged} unchanged"
    )
    return 1 if failed else 0


def _search(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _open(args) as (store, kb):
            hits = await store.search(args.tenant, kb, args.query, k=args.k, min_score=args.min_score)
        if args.json:
            print(json.dumps([_row(hit) for hit in hits]))
            return 0
        for hit in hits:
            where = f"{hit.source}" + (f" > {hit.heading}" if hit.heading else "")
            print(f"{hit.score:.3f}  {where}")
            print("       " + hit.text.split("\n\n", 1)[-1][:200].replace("\n", " "))
        if not hits:
            print("no passages found")
        return 0

    return _run(main)


def _stats(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _open(args) as (store, kb):
            stats = await store.stats(args.tenant, kb)
        print(f"{args.tenant}/{kb}: {stats.passages} passages from {stats.sources} documents")
        return 0

    return _run(main)


def _delete(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with _open(args) as (store, kb):
            removed = await store.delete_source(args.tenant, kb, args.source)
        print(f"removed {removed} passages of {args.source}")
        return 0 if removed else 1

    return _run(main)


def _row(hit: Any) -> dict[str, Any]:
    return {name: getattr(hit, name) for name in ("id", "score", "source", "title", "heading", "text")}


def _run(main: Callable[[], Awaitable[int]]) -> int:
    from agents.errors import AgentError
    from bus.errors import BusError, NoResponders

    async def guarded() -> int:
        try:
            return await main()
        except (KnowledgeError, ValueError, _Usage) as exc:
            print(f"hivewire knowledge: {exc}", file=sys.stderr)
            return 2
        except NoResponders:
            print(
                "hivewire knowledge: no knowledge agent runs on the mesh; start one with "
                "`hivewire agent run knowledge.agent:knowledge`",
                file=sys.stderr,
            )
            return 1
        except (BusError, AgentError) as exc:
            print(f"hivewire knowledge: {exc}", file=sys.stderr)
            return 1

    return uvloop.run(guarded())
