"""Tools for models: a toolbox runs the calls a model asks for at once, and the tool-result cache
answers a repeated call (keyed by tool, input and the data read) until the data changes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agents import Agent, AgentRuntime, AgentSettings, Context, Mesh, ToolError
from agents.llm import ToolCall
from agents.resources import Resources
from agents.tools import FunctionTool, Toolbox
from bus import Bus, new_id
from tests.redis_server import RedisServer

# Tenants unique to this run: a Redis from REDIS_URL may hold an earlier run's results.
RUN = new_id()[:8]


class Lines(msgspec.Struct, frozen=True):
    file: str
    pause: float = 0.0


class Counted(msgspec.Struct, frozen=True):
    lines: int
    started: float
    ended: float


def _read(file: str) -> bytes | None:
    path = Path(file)
    return path.read_bytes() if path.is_file() else None


async def _count(ctx: Context, args: Lines) -> Counted:
    started = time.time()
    data = _read(args.file)
    if data is None:
        raise ToolError("count_lines", f"no file {Path(args.file).name}")
    await asyncio.sleep(args.pause)
    return Counted(lines=len(data.splitlines()), started=started, ended=time.time())


async def _content_hash(ctx: Context, args: Lines) -> str:
    data = _read(args.file)
    return hashlib.sha256(data).hexdigest() if data is not None else ""


TOOLS = Toolbox(
    [
        FunctionTool(
            name="count_lines",
            description="Count a file's lines.",
            parameters=Lines,
            result_type=Counted,
            run=_count,
            fingerprint=_content_hash,
        )
    ]
)


class Used(msgspec.Struct, frozen=True):
    text: str
    cached: str
    error: str
    value: Counted | None


librarian = Agent("librarian", description="Runs its tools as a model asks.")


@librarian.skill
async def use(ctx: Context, calls: list[ToolCall]) -> list[Used]:
    """Run the calls (as a model's answer lists them) and report each result."""
    return [
        Used(text=r.text, cached=r.cached, error=r.error, value=r.value)
        for r in await TOOLS.run_all(ctx, calls)
    ]


def _call(file: Path, pause: float = 0.0) -> ToolCall:
    # The model's spacing and key order are its own: the cache key is the decoded input.
    return ToolCall(
        id=new_id()[:8], name="count_lines", arguments=f'{{ "pause": {pause},  "file": "{file}" }}'
    )


@asynccontextmanager
async def _replica(
    settings: AgentSettings, meter_provider: MeterProvider | None = None
) -> AsyncIterator[Resources]:
    """A replica of the librarian with its own in-process cache (as another process would have)."""
    resources = Resources.from_settings(settings, meter_provider=meter_provider)
    bus = await Bus.connect(settings)
    try:
        async with AgentRuntime(librarian, bus, settings, resources=resources):
            yield resources
    finally:
        await resources.close()
        await bus.close()


@pytest.fixture
def tool_settings(agent_settings: AgentSettings, redis_server: RedisServer) -> AgentSettings:
    return agent_settings.model_copy(update={"redis_url": redis_server.url})


async def test_a_repeated_call_is_answered_from_the_cache_until_the_file_changes(
    tool_settings: AgentSettings, mesh: Mesh, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\nb\n")
    caller = mesh.caller(f"t{RUN}a")
    async with _replica(tool_settings):
        first, again = await caller.call(
            "librarian", "use", [_call(data, pause=0.5), _call(data, pause=0.5)], list[Used]
        )
        (repeat,) = await caller.call("librarian", "use", [_call(data, pause=0.5)], list[Used])
        data.write_text("a\nb\nc\n")
        (changed,) = await caller.call("librarian", "use", [_call(data, pause=0.5)], list[Used])
        data.write_text("a\nb\n")
        (restored,) = await caller.call("librarian", "use", [_call(data, pause=0.5)], list[Used])
    # Two calls at once both miss (each runs half a second: neither has finished when the other looks).
    assert (first.cached, again.cached) == ("", "")
    assert repeat.cached == "local"
    assert repeat.value in (first.value, again.value)  # a result stored before, not a new run
    assert (changed.cached, changed.value and changed.value.lines) == ("", 3)
    # The old content's result was never invalidated, only unreachable while the file differed.
    assert (restored.cached, restored.value and restored.value.lines) == ("local", 2)


async def test_replicas_share_results_through_redis_but_tenants_never_do(
    tool_settings: AgentSettings, mesh: Mesh, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\nb\n")
    async with _replica(tool_settings):
        (ran,) = await mesh.caller(f"t{RUN}b").call("librarian", "use", [_call(data)], list[Used])
    reader = InMemoryMetricReader()
    async with _replica(tool_settings, MeterProvider(metric_readers=[reader])) as other:
        (shared,) = await mesh.caller(f"t{RUN}b").call("librarian", "use", [_call(data)], list[Used])
        (elsewhere,) = await mesh.caller(f"t{RUN}c").call("librarian", "use", [_call(data)], list[Used])
        stats = other.tool_cache.stats
    assert (ran.cached, shared.cached, elsewhere.cached) == ("", "redis", "")
    assert (stats.redis_hits, stats.misses, stats.hit_ratio) == (1, 1, 0.5)
    metrics = reader.get_metrics_data()
    assert metrics is not None
    points = {
        (metric.name, tuple(sorted(dict(point.attributes or {}).items()))): point.value  # type: ignore[union-attr]
        for rm in metrics.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
    }
    tool = ("gen_ai.tool.name", "count_lines")
    assert points[("hivewire.tools.cache.hits", (tool, ("layer", "redis"), ("tenant", f"t{RUN}b")))] == 1
    assert points[("hivewire.tools.cache.misses", (tool, ("tenant", f"t{RUN}c")))] == 1
    assert points[("hivewire.tools.cache.hit_ratio", ())] == 0.5


async def test_calls_run_at_once_and_failures_go_back_to_the_model_uncached(
    tool_settings: AgentSettings, mesh: Mesh, tmp_path: Path
) -> None:
    files = [tmp_path / f"{n}.csv" for n in range(3)]
    for file in files:
        file.write_text("x\n")
    caller = mesh.caller(f"t{RUN}d")
    bad = [
        ToolCall(id="c1", name="delete_everything", arguments="{}"),
        ToolCall(id="c2", name="count_lines", arguments='{"file": 7}'),
        _call(tmp_path / "missing.csv"),
    ]
    async with _replica(tool_settings):
        slow = await caller.call("librarian", "use", [_call(f, pause=0.3) for f in files], list[Used])
        failed = await caller.call("librarian", "use", bad, list[Used])
        again = await caller.call("librarian", "use", bad[2:], list[Used])
    values = [r.value for r in slow if r.value is not None]
    assert len(values) == 3
    assert max(v.started for v in values) < min(v.ended for v in values)  # all three ran at once
    assert [r.error.split(";")[0] for r in failed] == [
        "there is no tool 'delete_everything'",
        "invalid arguments: Expected `str`, got `int` - at `$.file`",
        "no file missing.csv",
    ]
    assert all(r.text == "error: " + r.error for r in failed)
    assert again[0].cached == ""  # an error is never cached
