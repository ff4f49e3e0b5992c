"""The dev loop: `hivewire up` once, then every other command finds that mesh, whatever else listens.

One `hivewire up` runs for the whole module, in a folder of its own, started
while another NATS server (the decoy) holds the port it asks for: commands run
in that folder reach the mesh through its state file, never the decoy. The
module then shows a wrong URL refused at once, Ctrl-C ending a command that
waits for NATS, documents ingested from the shell reaching the running desk,
`hivewire ask` reading stdin and surviving a closed pipe, every shell example
of the README and docs run as written, and a killed agent coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bus import EmbeddedNats, local
from bus.cli import main
from gateway.apps import APPS
from gateway.settings import GatewaySettings
from tests import shell_examples
from tests.gateway_server import free_port
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


@dataclass
class Mesh:
    process: asyncio.subprocess.Process
    folder: Path
    output: Path
    state: local.LocalMesh
    env: dict[str, str]

    def printed(self) -> str:
        return self.output.read_text()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIVEWIRE_", "OTEL_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


async def _hivewire(
    mesh: Mesh, *args: str, cwd: Path | None = None, stdin: bytes | None = None, **env: str
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", *args,
        cwd=cwd or mesh.folder, env={**mesh.env, **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return process.returncode, out.decode(), err.decode()


def _main(
    mesh: Mesh, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """A command run in this process (a fraction of a second, where a process takes one or two)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd or mesh.folder)
        for name in [name for name in os.environ if name.startswith("HIVEWIRE_")]:
            patch.delenv(name)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def decoy() -> Iterator[EmbeddedNats]:
    """Another NATS server, on the port `hivewire up` is asked for (as 4222 often is)."""
    with EmbeddedNats(port=0) as server:
        yield server


@pytest.fixture(scope="module")
async def mesh(
    tmp_path_factory: pytest.TempPathFactory, decoy: EmbeddedNats, redis_server: RedisServer
) -> AsyncIterator[Mesh]:
    folder = tmp_path_factory.mktemp("devloop")
    env = _clean_env(HIVEWIRE_REDIS_URL=redis_server.url)
    output = folder / "up.log"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bus.cli", "up", "--no-samples",
            "--port", str(free_port()), "--nats-port", str(decoy.port),
            cwd=folder, env=env, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in output.read_text():
            assert process.returncode is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            await asyncio.sleep(0.2)
        state = local.running(folder / ".hivewire")
        assert state is not None, output.read_text()
        yield Mesh(process, folder, output, state, env)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert not (folder / ".hivewire" / "up.json").exists(), "the state file goes with the mesh"


async def test_up_keeps_its_state_in_the_data_dir(mesh: Mesh, decoy: EmbeddedNats) -> None:
    data = mesh.folder / ".hivewire"
    assert {p.name for p in data.iterdir()} >= {"nats", "chroma", "up.json"}
    assert stat.S_IMODE((data / "up.json").stat().st_mode) == 0o600  # it holds an API key
    assert mesh.state.nats_url != decoy.url
    assert mesh.state.tenant == "local"
    assert mesh.state.api_key
    assert mesh.state.api_key.startswith("hw_")
    assert f"port {decoy.port} is taken" in mesh.printed()
    assert f"also in {Path('.hivewire') / 'up.json'}" in mesh.printed()


async def test_the_installed_command_finds_the_mesh(mesh: Mesh) -> None:
    code, out, err = await _hivewire(mesh, "agents", "--json")
    assert code == 0, err
    assert {"knowledge", "triage", "answer"} <= {agent["name"] for agent in json.loads(out)}


def test_commands_find_the_mesh_and_not_the_server_on_the_usual_port(mesh: Mesh, decoy: EmbeddedNats) -> None:
    assert "triage" in _main(mesh, "agents")[1]
    # The flag, then the environment, come before the state file.
    assert _main(mesh, "agents", "--nats-url", decoy.url)[1].strip() == "no live agents"
    assert _main(mesh, "agents", env={"HIVEWIRE_NATS_URL": decoy.url})[1].strip() == "no live agents"
    # From another folder, --data-dir (or HIVEWIRE_DATA_DIR) names the mesh's.
    elsewhere = mesh.folder / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    data = str(mesh.folder / ".hivewire")
    assert "triage" in _main(mesh, "agents", "--data-dir", data, cwd=elsewhere)[1]
    assert "triage" in _main(mesh, "agents", cwd=elsewhere, env={"HIVEWIRE_DATA_DIR": data})[1]
    # A key made from the shell is one the mesh's gateway knows: they share the mesh.
    code, key, err = _main(mesh, "keys", "create", "--tenant", "devloop")
    assert code == 0, err
    reply = httpx.get(f"{mesh.state.url}/v1/agents", headers={"Authorization": f"Bearer {key.strip()}"})
    assert reply.status_code == 200, reply.text
    assert _main(mesh, "keys", "list")[1].count("devloop") == 1
    assert _main(mesh, "dlq", "list")[1].strip() == "no dead letters"


def test_a_state_file_whose_mesh_is_gone_is_not_used(tmp_path: Path, decoy: EmbeddedNats) -> None:
    gone = 2**22 + 12345  # above the usual pid_max of 32768... and checked dead below
    assert not Path(f"/proc/{gone}").exists() or sys.platform != "linux"
    local.save(tmp_path, local.LocalMesh(nats_url=decoy.url, pid=gone))
    assert local.load(tmp_path) is not None
    assert local.running(tmp_path) is None  # its process has ended
    local.save(tmp_path, local.LocalMesh(nats_url=f"nats://127.0.0.1:{free_port()}", pid=os.getpid()))
    assert local.running(tmp_path) is None  # nothing answers at its URL
    local.save(tmp_path, local.LocalMesh(nats_url=decoy.url, pid=os.getpid()))
    assert local.running(tmp_path) is not None
    assert local.nats_url(None, None, tmp_path) == decoy.url
    assert local.nats_url(None, "nats://elsewhere:4222", tmp_path) == "nats://elsewhere:4222"
    assert local.nats_url("nats://flag:4222", "nats://elsewhere:4222", tmp_path) == "nats://flag:4222"
    local.forget(tmp_path, os.getpid() + 1)  # another up's file stays
    assert local.load(tmp_path) is not None
    local.forget(tmp_path, os.getpid())
    assert local.load(tmp_path) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:4222", "notaurl", "nats://127.0.0.1:port", "nats://"])
def test_a_wrong_nats_url_is_refused_at_once(mesh: Mesh, url: str) -> None:
    for args, env in (
        (("agents", "--nats-url", url), {}),
        (("keys", "list"), {"HIVEWIRE_NATS_URL": url}),
        (("dlq", "list", "--nats-url", url), {}),
        (("knowledge", "stats", "--nats-url", url), {}),
        (("agent", "run", "knowledge.agent:knowledge"), {"HIVEWIRE_NATS_URL": url}),
        (("gateway",), {"HIVEWIRE_NATS_URL": url}),
    ):
        code, _, err = _main(mesh, *args, env=env)
        assert code == 2, (args, err)
        assert "is not a NATS URL" in err
        assert len(err.strip().splitlines()) == 1, err
    code, out, _ = _main(mesh, "up", "--data-dir", str(mesh.folder / "other"), env={"HIVEWIRE_NATS_URL": url})
    assert code == 2
    assert out.startswith("hivewire up: HIVEWIRE_NATS_URL: ")
    assert "is not a NATS URL" in out


async def test_the_installed_command_refuses_a_wrong_url(mesh: Mesh) -> None:
    code, _, err = await _hivewire(mesh, "agents", "--nats-url", "http://127.0.0.1:4222")
    assert code == 2
    assert err.startswith("hivewire agents: 'http://127.0.0.1:4222' is not a NATS URL (that is the gateway's")


async def test_ask_refuses_a_wrong_gateway_url_in_one_line(mesh: Mesh) -> None:
    code, _, err = await _hivewire(mesh, "ask", "--url", "notaurl", "hello")
    assert (code, err.strip()) == (2, "hivewire ask: 'notaurl' is not an http(s) URL")
    # NATS's port does not speak HTTP; a closed port does not answer at all.
    for url in (mesh.state.nats_url.replace("nats://", "http://"), f"http://127.0.0.1:{free_port()}"):
        code, _, err = await _hivewire(mesh, "ask", "--url", url, "hello")
        assert code == 1
        assert err.startswith("hivewire ask: cannot reach a gateway at 127.0.0.1:"), err


def _as_in_a_terminal() -> None:
    """Ctrl-C as a terminal's foreground command gets it: whatever the test process inherited
    (a worker that ignores or blocks SIGINT passes that on to what it starts), SIGINT is delivered."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


async def test_ctrl_c_ends_a_command_that_waits_for_nats(mesh: Mesh) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bus.cli", "agents", "--nats-url", f"nats://127.0.0.1:{free_port()}",
        cwd=mesh.folder, env=mesh.env, stderr=asyncio.subprocess.PIPE, preexec_fn=_as_in_a_terminal,
    )  # fmt: skip
    assert process.stderr is not None
    line: bytes = await asyncio.wait_for(process.stderr.readline(), 30)  # it is trying
    assert b"NATS connection error" in line
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 10)
    assert time.monotonic() - sent < 3
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert err.decode().strip().endswith("hivewire: interrupted")


def test_documents_ingested_from_the_shell_reach_the_running_desk(mesh: Mesh) -> None:
    docs = mesh.folder / "my-docs"
    docs.mkdir()
    (docs / "moon-trips.md").write_text(
        "# Booking a trip to the Moon\n\n"
        "To book a trip to the Moon, open Orbitly, choose Lunar Trips and enter the code LUNA-42. "
        "Trips to the Moon leave every Tuesday from the Orbitly spaceport.\n"
    )
    # No --tenant: the local mesh's tenant, the one the desk answers for.
    code, out, err = _main(mesh, "knowledge", "ingest", "my-docs")
    assert code == 0, err
    assert "(through the knowledge agent of the mesh at" in err
    assert out.startswith("1 documents: 1 passages added")
    code, out, err = _main(mesh, "ask", "How do I book a trip to the Moon?")
    assert code == 0, err
    assert "LUNA-42" in out
    assert "moon-trips.md" in out
    code, out, _ = _main(mesh, "knowledge", "search", "lunar trips", "--json")
    assert json.loads(out)[0]["source"] == "moon-trips.md"
    stats = _main(mesh, "knowledge", "stats")[1].strip()
    assert stats == "local/default: 1 passages from 1 documents"
    code, out, _ = _main(mesh, "knowledge", "delete", "moon-trips.md")
    assert (code, out.strip()) == (0, "removed 1 passages of moon-trips.md")


async def test_ask_reads_stdin_shows_progress_and_survives_a_closed_pipe(mesh: Mesh) -> None:
    question = b"I'm furious: the courier lost my Orbitly mug order again and nobody answers. Fed up!\n"
    for args in (("ask",), ("ask", "-")):
        code, out, err = await _hivewire(mesh, *args, stdin=question)
        assert code == 0, err
        assert "[looking into it]" in err  # the desk's status events, as they come
        assert "[intent: " in err
        assert "[flagged for a human agent: " in err
        assert "handed off to a human" in err
        assert "passed this conversation to a person" in out
    code, _, err = await _hivewire(mesh, "ask", stdin=b"  \n")
    assert (code, err.strip()) == (2, "hivewire ask: the question is empty")
    # `| head -c1`: the reader leaves after one byte; the rest has nowhere to go.
    process = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m bus.cli ask 'How do I export my data?' 2>{mesh.folder / 'pipe.err'} | head -c1",
        cwd=mesh.folder, env=mesh.env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    piped, _ = await asyncio.wait_for(process.communicate(), 60)
    assert len(piped) == 1
    said = (mesh.folder / "pipe.err").read_text()
    assert "Traceback" not in said
    assert "Error" not in said


async def test_ask_calls_the_skill_it_is_told(mesh: Mesh) -> None:
    code, _, err = await _hivewire(mesh, "ask", "--agent", "knowledge", "--skill", "nosuch", "hello")
    assert code == 1
    assert "no skill" in err.lower() or "not found" in err.lower(), err
    code, _, err = await _hivewire(mesh, "ask", "--agent", "triage", "--skill", "chat", "hello there")
    assert code == 0, err


def test_a_standalone_gateway_talks_to_the_desk_by_default() -> None:
    assert GatewaySettings(_env_file=None).gateway_agent == APPS["desk"].entry[0] == "triage"


@pytest.mark.timeout(360)
async def test_every_shell_example_in_the_readme_and_docs_runs(mesh: Mesh) -> None:
    documents = {
        d: [b for b in shell_examples.blocks(d) if b.skipped is None] for d in shell_examples.DOCUMENTS
    }
    # A reader per document, all at once (they share the mesh, as several terminals would), except
    # that documents starting agents take turns: their agents share names (greeter) but not skills.
    starting = [
        d for d, blocks in documents.items() if any("agent run" in c for b in blocks for c in b.commands)
    ]

    async def in_turn() -> list[tuple[int, str]]:
        return [await _run_examples(mesh, d, documents[d]) for d in starting]

    others = [
        _run_examples(mesh, d, blocks) for d, blocks in documents.items() if blocks and d not in starting
    ]
    chain = asyncio.ensure_future(in_turn())
    results = [*await asyncio.gather(*others), *await chain]
    for code, report in results:
        assert code == 0, report
        assert "Traceback" not in report, report
    ran = [block.where for blocks in documents.values() for block in blocks]
    every = [b for d in shell_examples.DOCUMENTS for b in shell_examples.blocks(d)]
    skipped = [b.where for b in every if b.skipped]
    # The list of skipped examples names only examples that exist (it does not outlive them).
    for start in shell_examples.SKIPPED:
        assert any(b.commands[0].startswith(start) for b in every), f"no example starts with {start!r}"
    assert any(where.startswith("README.md") for where in ran)
    assert len(ran) >= 9, (ran, skipped)


async def _run_examples(mesh: Mesh, document: Path, examples: list[shell_examples.Block]) -> tuple[int, str]:
    """Run a document's examples in a folder of their own, as a reader's clone: its files, .venv, samples."""
    folder = mesh.folder / "examples" / document.stem
    (folder / ".venv").mkdir(parents=True)
    (folder / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (folder / "knowledge").symlink_to(ROOT / "knowledge")
    for name, text in shell_examples.python_files(document).items():
        (folder / name).write_text(text)
    script = shell_examples.script(
        examples, gateway_port=int((mesh.state.url or "").rsplit(":", 1)[1]), standalone_port=free_port()
    )
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=folder,
        env={**mesh.env, "KEY": mesh.state.api_key or "", "MESH_KEY": mesh.state.api_key or "",
             "MESH_URL": mesh.state.url or "", "HIVEWIRE_DATA_DIR": str(mesh.folder / ".hivewire")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    communicating = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait([communicating], timeout=150)
    if not done:  # a stuck example: stop it and everything it started, and say where it was
        os.killpg(process.pid, signal.SIGKILL)
    out, err = await communicating
    assert process.returncode is not None
    return (
        process.returncode,
        f"{document.name}:\n{script}\n--- stdout\n{out.decode()}\n--- stderr\n{err.decode()}",
    )


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command lines (Linux's /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found[int(entry.name)] = command
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="finds the agent's process in /proc")
async def test_a_killed_agent_is_restarted_and_the_mesh_answers(mesh: Mesh) -> None:
    (triage,) = [
        pid for pid, command in _children(mesh.process.pid).items() if "desk.triage:triage" in command
    ]
    os.kill(triage, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "triage restarted" not in mesh.printed():
        assert time.monotonic() < deadline, mesh.printed()
        await asyncio.sleep(0.2)
    assert "hivewire up: triage was killed by SIGKILL; restarting it in 1 s" in mesh.printed()
    assert mesh.process.returncode is None  # the mesh ran on
    while True:  # until the new triage has joined
        code, _out, err = await _hivewire(mesh, "ask", "How do I export my data?")
        if code == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert code == 0, err
    assert "[intent: " in err
