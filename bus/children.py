"""Child processes that die with their parent, so a crashed parent leaves no server behind."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent"]


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when its parent dies, or ``None``.

    Linux only, and only from the main thread: the kernel ties the signal to
    the thread that forked, so a child started from another thread would be
    killed when that thread ends.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    return _set_parent_death_signal


def _set_parent_death_signal() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
