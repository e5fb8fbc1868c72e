"""A bounded, thread-safe LRU cache of pair scores keyed by image content and prompt."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from paco_core.errors import InputError

DEFAULT_CACHE_SIZE = 4096


class ScoreCache:
    """Least-recently-used map from a pair key to its score.

    The key holds the SHA-256 of both images' pixels, the prompt text and whatever else
    changes the score (the answer set), so a hit is always the same question. A size of
    0 disables the cache.

    Example:
        >>> cache = ScoreCache(max_entries=2)
        >>> cache.put(("a", "b", "prompt"), 0.75)
        >>> cache.get(("a", "b", "prompt"))
        0.75
    """

    def __init__(self, max_entries: int = DEFAULT_CACHE_SIZE):
        if not isinstance(max_entries, int) or max_entries < 0:
            raise InputError(f"cache size should be a whole number >= 0, got {max_entries!r}.")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> float | None:
        """The cached score, or None (and the key becomes the most recently used on a hit)."""
        with self._lock:
            if key not in self._entries:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]

    def put(self, key: Hashable, score: float) -> None:
        """Store a score, dropping the least recently used entries beyond the bound."""
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = score
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
