"""What a test that hangs is waiting for: the stacks of its event loop's tasks, printed just before
pytest-timeout stops it (whose report shows threads only, and an event loop's thread is idle
in ``select`` while its tasks wait)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["reporting_hangs"]

# Seconds before pytest-timeout's own report that the tasks' stacks are printed.
AHEAD = 3.0


@contextmanager
def reporting_hangs(timeout: float) -> Iterator[None]:
    """Within the block, if it is still running ``timeout - AHEAD`` seconds on, print every task of
    every running event loop with its stack to standard error (captured with the test's output)."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(max(1.0, timeout - AHEAD)):
            for loop in _running_loops():
                loop.call_soon_threadsafe(_print_tasks, loop)

    watcher = threading.Thread(target=watch, name="hang-report", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    print(
        f"\n---- {len(tasks)} tasks of a running event loop, as the test's time runs out ----",
        file=sys.stderr,
    )
    for task in tasks:
        task.print_stack(limit=12, file=sys.stderr)
