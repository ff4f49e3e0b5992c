"""A brief in-process cache of search results, keyed by query and collection version.

A key holds everything that decides a result: tenant, knowledge base, the
collection's version, query, ``k``, filter and minimum score. The store bumps
a collection's version whenever this process ingests into it or deletes from
it, so a result cached before a change is never served after it. Changes made
by other processes (another replica, the CLI, a shared ``chroma run`` server)
are not seen: their effect shows once the entry's time to live has passed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["SearchCache"]

V = TypeVar("V")


class SearchCache(Generic[V]):
    """A small LRU of values that expire ``ttl`` seconds after they were stored; thread-safe.

    Args:
        ttl: seconds an entry is served; 0 turns the cache off.
        max_entries: entries kept; the least recently used goes first.
    """

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError(f"ttl must be >= 0 and max_entries >= 1, not {ttl} and {max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, key: Hashable) -> V | None:
        """The value stored under ``key`` if it has not expired (counted as a hit or a miss)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
