"""`hivewire up`'s children: a crashed one is restarted after a pause that doubles, and said in words.

The end-to-end case (an agent killed with SIGKILL under a running `hivewire up`
comes back and the mesh answers) is in tests/test_devloop.py.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.supervise import LONGEST_DELAY, STABLE_AFTER, Child, describe_exit, restart_delay, supervise


async def _child() -> Child:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    return Child("demo", process, ["-c", "pass"], {})


async def test_the_pause_doubles_while_a_child_keeps_crashing_and_resets_once_it_stays_up() -> None:
    child = await _child()
    await child.process.wait()
    now = child.started
    delays = [restart_delay(child, now + 1) for _ in range(7)]
    assert delays == [1, 2, 4, 8, 16, LONGEST_DELAY, LONGEST_DELAY]
    assert restart_delay(child, child.started + STABLE_AFTER) == 1  # it ran for a minute: a fresh start


def test_an_exit_is_said_in_words() -> None:
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-200) == "exited with code -200"


async def test_a_child_that_exits_is_started_again_until_ctrl_c() -> None:
    said: list[str] = []
    stop = asyncio.Event()
    child = await _child()
    spawned: list[list[str]] = []

    async def spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
        spawned.append(args)
        if len(spawned) == 2:
            stop.set()  # Ctrl-C after the second restart
        return Child(name, await asyncio.create_subprocess_exec(sys.executable, *args), args, env)

    # The first pause is 1 s, the second 2 s: within the test's time, two restarts.
    code = await asyncio.wait_for(supervise([child], stop, spawn, said.append), 10)
    assert code == 0
    assert spawned == [["-c", "pass"], ["-c", "pass"]]
    assert (
        said[0] == "hivewire up: demo exited with code 0; restarting it in 1 s (the rest of the mesh runs on)"
    )
    assert said[1].startswith("hivewire up: demo restarted (pid ")
    assert said[2].endswith("restarting it in 2 s (the rest of the mesh runs on)")
    await child.process.wait()
