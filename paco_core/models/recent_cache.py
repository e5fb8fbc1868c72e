"""A bounded cache of loaded models that forgets the least recently used first.

Pipelines and judges are cached this way; the size is read from a setting on every use,
so lowering it takes effect at the next load. The caller holds its own lock around calls.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class RecentCache(Generic[Key, Value]):
    """At most ``size()`` values, least recently used first.

    Args:
        what: the word in log lines, e.g. "pipeline".
        setting: the environment variable holding the size (named in log lines).
        size: reads the size from that setting (``paco_core.settings``).
        name_of: how a forgotten value is named in the log line.
    """

    def __init__(
        self, what: str, setting: str, size: Callable[[], int], name_of: Callable[[Value], str]
    ) -> None:
        self.what = what
        self.setting = setting
        self.size = size
        self.name_of = name_of
        self._items: OrderedDict[Key, Value] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> list[Value]:
        return list(self._items.values())

    def get(self, key: Key) -> Value | None:
        """The value of ``key`` (now the most recently used), or None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def pop(self, key: Key) -> Value | None:
        return self._items.pop(key, None)

    def remember(self, key: Key, value: Value) -> None:
        """Keep ``value`` as the most recently used, forgetting the oldest beyond the size."""
        self._items[key] = value
        self._items.move_to_end(key)
        self.trim()

    def trim(self) -> None:
        """Forget the least recently used values beyond the size (it may have been lowered)."""
        size = self.size()
        while len(self._items) > size:
            _, evicted = self._items.popitem(last=False)
            logger.info(
                "%s cache full (%s=%d): forgot %s", self.what, self.setting, size, self.name_of(evicted)
            )

    def clear(self) -> list[Value]:
        """Forget every value; returns them."""
        values = list(self._items.values())
        self._items.clear()
        return values
