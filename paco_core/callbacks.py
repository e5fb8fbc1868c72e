"""Progress and cancel hooks: the core takes callbacks instead of importing a host.

A ComfyUI node connects these to ComfyUI's progress bar and interrupt flag; the CLI
prints; tests record calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each unit of work."""

CancelCheck = Callable[[], None]
"""Called between units of work; raises (any exception) to stop the work."""


def _no_progress(done: int, total: int) -> None:
    return None


def _never_cancel() -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """Bundle of the progress and cancel callbacks a long operation accepts."""

    progress: ProgressFn = _no_progress
    check_cancel: CancelCheck = _never_cancel

    def step(self, done: int, total: int) -> None:
        """Report progress, then give the host the chance to cancel."""
        self.progress(done, total)
        self.check_cancel()


NO_HOOKS = Hooks()
