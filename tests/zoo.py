"""Agents the tests run as separate processes (``hivewire agent run tests.zoo:NAME``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import msgspec

from agents import Agent, Call, ChatMessage, Context, InputRequired, Model
from bus.a2a import Role
from bus.errors import ErrorCode, RemoteError, RequestTimeout


class Numbers(msgspec.Struct, frozen=True):
    a: int
    b: int


class Sum(msgspec.Struct, frozen=True):
    total: int
    by: str


class Job(msgspec.Struct, frozen=True):
    n: int
    seconds: float = 0.0


class Done(msgspec.Struct, frozen=True):
    n: int
    pid: int


class Counter(msgspec.Struct, frozen=True):
    value: int


class Steps(msgspec.Struct, frozen=True):
    count: int
    seconds: float = 0.1


echo = Agent("echo", description="Echoes, adds and counts; the tests' all-rounder.", version="1.2.0")


@echo.skill
async def shout(ctx: Context, text: str) -> str:
    """Repeat the text in capitals."""
    return text.upper()


@echo.skill(tags=("math",), examples=('{"a": 1, "b": 2}',))
async def add(ctx: Context, numbers: Numbers) -> Sum:
    """Add two numbers."""
    return Sum(total=numbers.a + numbers.b, by=f"{ctx.agent}:{os.getpid()}")


@echo.skill
async def count(ctx: Context, upto: int) -> AsyncIterator[str]:
    """Stream the numbers from 1 to ``upto``."""
    for i in range(1, upto + 1):
        yield f"{i} "


@echo.skill
async def nap(ctx: Context, seconds: float) -> str:
    """Sleep, then say how long was left of the deadline."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s with {ctx.remaining()} left"


@echo.skill
async def deadline(ctx: Context, text: str) -> float:
    """Report the remaining deadline as this agent sees it."""
    remaining = ctx.remaining()
    return -1.0 if remaining is None else remaining


@echo.skill
async def relay(ctx: Context, numbers: Numbers) -> Sum:
    """Add by asking the ``echo.add`` skill (a hop), to observe deadline and hops."""
    return await ctx.call("echo", "add", numbers, Sum)


@echo.skill
async def remaining_downstream(ctx: Context, text: str) -> float:
    """Ask ``deadline`` one hop down and return what the callee saw."""
    return await ctx.call("echo", "deadline", text, float)


@echo.skill
async def spell(ctx: Context, text: str) -> str:
    """Stream ``text`` to the conversation letter by letter (a callee's progress), then return it."""
    for letter in text:
        await ctx.emit_chunk(letter)
    return text


@echo.skill
async def spell_via(ctx: Context, text: str) -> str:
    """Have ``spell`` stream ``text`` (a hop): its letters belong to this call's task."""
    return await ctx.call("echo", "spell", text, str)


@echo.skill
async def ask_absent(ctx: Context, text: str) -> str:
    """Call an agent that has no live replica: the failure is the callee's absence, not a bug here."""
    return await ctx.call("absent", "ping", text, str)


@echo.skill
async def loop(ctx: Context, text: str) -> str:
    """Call itself forever: the hop limit must stop it."""
    return await ctx.call("echo", "loop", text, str)


@echo.skill
async def broken(ctx: Context, text: str) -> str:
    """Always fails with a typed error."""
    raise RemoteError(ErrorCode.UNAVAILABLE, f"cannot {text} right now")


@echo.skill
async def incr(ctx: Context, key: str) -> Counter:
    """Increment a counter in the conversation's shared state."""
    updated = await ctx.state.update(key, Counter, lambda c: Counter(value=(c.value if c else 0) + 1))
    return updated.value


@echo.skill
async def fan(ctx: Context, seconds: float) -> list[str]:
    """Fan out to ``add`` and ``nap`` under one deadline; report what came back."""
    results = await ctx.gather(
        Call("echo", "add", Numbers(1, 2), Sum),
        Call("echo", "nap", seconds, str),
        timeout=0.5,
    )
    return [_outcome(r.value if r.ok else r.error) for r in results]


def _outcome(value: object) -> str:
    if isinstance(value, Sum):
        return f"ok:{value.total}"
    if isinstance(value, RequestTimeout):
        return "failed:timeout"
    return f"failed:{value}" if isinstance(value, Exception) else "ok"


jobs = Agent("jobs", description="Durable jobs for the delivery tests.")


@jobs.skill
async def work(ctx: Context, job: Job) -> Done:
    """Sleep ``job.seconds`` and report who did it."""
    await ctx.emit_status(f"working on {job.n}")
    await asyncio.sleep(job.seconds)
    return Done(n=job.n, pid=os.getpid())


@jobs.skill
async def pause(ctx: Context, seconds: float) -> float:
    """Wait ``seconds``, saying nothing meanwhile (the status events are the worker's alone)."""
    await asyncio.sleep(seconds)
    return seconds


@jobs.skill
async def book(ctx: Context, text: str) -> str:
    """Book a trip; asks where to until it knows both ends (a task that waits for input)."""
    said = [m.text for m in ctx.task_history if m.role is Role.USER] + [text]
    if len(said) < 2:
        raise InputRequired(f"Where should the trip from {text} go?")
    return "booked: " + " -> ".join(said)


@jobs.skill
async def progress(ctx: Context, steps: Steps) -> int:
    """Report each step as it is done, ``steps.seconds`` apart (a task to follow while it runs)."""
    for i in range(1, steps.count + 1):
        await asyncio.sleep(steps.seconds)
        await ctx.emit_status(f"step {i} of {steps.count}")
    return steps.count


@jobs.skill
async def poison(ctx: Context, text: str) -> str:
    """Always fails: ends in the dead-letter stream."""
    raise ValueError(f"cannot digest {text!r}")


@jobs.skill
async def flaky(ctx: Context, key: str) -> str:
    """Fails on the first two deliveries, then succeeds (counted in shared state)."""
    attempt = await ctx.state.update(key, Counter, lambda c: Counter(value=(c.value if c else 0) + 1))
    if attempt.value.value < 3:
        raise RuntimeError(f"attempt {attempt.value.value} fails")
    return f"succeeded on attempt {attempt.value.value}"


@jobs.skill
async def tokens(ctx: Context, upto: int) -> AsyncIterator[str]:
    """A streaming skill run as a durable task."""
    for i in range(upto):
        yield f"t{i} "


@jobs.skill
async def picky(ctx: Context, key: str) -> str:
    """Fails until the conversation's state holds ``key`` (set it, then replay the dead letter)."""
    if await ctx.state.get(key, str) is None:
        raise LookupError(f"{key!r} is not in the conversation's state yet")
    return f"found {key}"


class Intent(msgspec.Struct, frozen=True):
    intent: str
    confidence: float


assistant = Agent(
    "assistant",
    description="Answers with a model, remembering the conversation.",
    models={"default": Model(name="big", fallback="small"), "classify": Model(name="small", temperature=0)},
)


@assistant.skill
async def answer(ctx: Context, question: str) -> str:
    """Answer with the conversation's history, streaming tokens to the conversation."""
    history = await ctx.history.load(ctx.tenant, ctx.context_id)
    stream = await ctx.llm.stream([*history, ChatMessage.user(question)])
    text = "".join([token async for token in stream])
    await ctx.history.append(
        ctx.tenant, ctx.context_id, ChatMessage.user(question), ChatMessage.assistant(text)
    )
    return text


@assistant.skill
async def chat(ctx: Context, question: str) -> str:
    """Answer with the conversation's history (the gateway records each turn), streaming tokens."""
    history = await ctx.history.load(ctx.tenant, ctx.context_id)
    stream = await ctx.llm.stream([*history, ChatMessage.user(question)])
    return "".join([token async for token in stream])


@assistant.skill
async def define(ctx: Context, word: str) -> str:
    """A deterministic answer, cached for the whole tenant (never shared with another tenant)."""
    completion = await ctx.llm.complete([ChatMessage.user(f"Define {word}")], cache="tenant")
    return ("cached: " if completion.cached else "") + completion.text


@assistant.skill
async def classify(ctx: Context, text: str) -> Intent:
    """Classify with the small model, as structured output."""
    return await ctx.llm.structured([ChatMessage.user(text)], Intent, use="classify")


teller = Agent("teller", description="Streams numbered chunks slowly, for the fault tests.")


@teller.skill
async def tell(ctx: Context, text: str) -> AsyncIterator[str]:
    """Stream ``"<chunks> <seconds>"``: that many numbered chunks, one every so many seconds."""
    count, pause = text.split()
    for i in range(int(count)):
        await asyncio.sleep(float(pause))
        yield f"c{i} "
