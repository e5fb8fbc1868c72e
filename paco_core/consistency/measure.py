"""Time and peak memory of one tool run, for the reports ("what did this cost")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Usage:
    """Seconds and peak memory of a run.

    Attributes:
        seconds: wall-clock time.
        peak_memory_bytes: the GPU's peak allocated memory during the run (CUDA), else the
            process's peak resident memory so far (Linux/macOS), else None.
        memory_kind: "GPU" or "process RSS" (what ``peak_memory_bytes`` measures).
    """

    seconds: float = 0.0
    peak_memory_bytes: int | None = None
    memory_kind: str = "process RSS"

    def describe(self) -> str:
        memory = "n/a" if self.peak_memory_bytes is None else f"{self.peak_memory_bytes / 2**20:.0f} MiB"
        return f"{self.seconds:.1f} s, peak memory {memory} ({self.memory_kind})"

    def to_json(self) -> dict:
        return {
            "seconds": self.seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_kind": self.memory_kind,
        }


@contextmanager
def measure(device: str = "cpu") -> Iterator[Usage]:
    """Fill the yielded ``Usage`` when the block ends (also when it raises)."""
    import torch

    usage = Usage(memory_kind="GPU" if str(device).startswith("cuda") else "process RSS")
    on_gpu = usage.memory_kind == "GPU" and torch.cuda.is_available()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - started
        usage.peak_memory_bytes = torch.cuda.max_memory_allocated(device) if on_gpu else _peak_rss()


def _peak_rss() -> int | None:
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
