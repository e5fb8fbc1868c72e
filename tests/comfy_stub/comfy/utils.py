"""Test double of ``comfy.utils``: a ProgressBar that records its updates.

As in a running ComfyUI server, every reported update goes through a global hook that
first checks the interrupt flag, so a cancel set by a test surfaces as
``InterruptProcessingException`` at the next progress update.
"""

from __future__ import annotations

from dataclasses import dataclass

from comfy import model_management


@dataclass(frozen=True)
class ProgressUpdate:
    node_id: str | None
    value: int
    total: int


PROGRESS_UPDATES: list[ProgressUpdate] = []
"""Every update any ProgressBar reported, oldest first."""


def _record_progress(value, total, preview, node_id=None) -> None:
    model_management.throw_exception_if_processing_interrupted()
    PROGRESS_UPDATES.append(ProgressUpdate(node_id, value, total))


PROGRESS_BAR_HOOK = _record_progress


def set_progress_bar_global_hook(function) -> None:
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None) -> None:
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value) -> None:
        self.update_absolute(self.current + value)


def stub_reset() -> None:
    """Forget recorded updates and restore the recording hook."""
    PROGRESS_UPDATES.clear()
    set_progress_bar_global_hook(_record_progress)


__all__ = ["PROGRESS_BAR_HOOK", "ProgressBar", "set_progress_bar_global_hook"]
