"""Time and peak memory of one tool run, for the tools' reports.

Peak memory is the accelerator's peak allocated memory during the run where torch has one
(CUDA), else the process's peak resident memory (the CPU has no per-run peak; the figure
is the largest the process has been so far).

Example:
    >>> with measure_usage() as usage:  # doctest: +SKIP
    ...     run_the_tool()
    >>> usage.describe()  # doctest: +SKIP
    '12.3 s, peak 9.81 GB CUDA memory'
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Usage:
    """How long a run took and the most memory it held.

    Attributes:
        seconds: wall-clock time of the run.
        peak_memory_gb: peak memory in GB (see ``memory_kind``).
        memory_kind: "CUDA memory" (peak allocated during the run) or "process memory"
            (peak resident set of the process so far).
    """

    seconds: float = 0.0
    peak_memory_gb: float = 0.0
    memory_kind: str = "process memory"

    def describe(self) -> str:
        return f"{self.seconds:.1f} s, peak {self.peak_memory_gb:.2f} GB {self.memory_kind}"

    def to_json(self) -> dict:
        return {
            "seconds": self.seconds,
            "peak_memory_gb": self.peak_memory_gb,
            "memory_kind": self.memory_kind,
        }


@contextmanager
def measure_usage() -> Iterator[Usage]:
    """Measure the enclosed run; the yielded ``Usage`` is filled in when the block ends (also on error)."""
    import torch

    usage = Usage()
    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        if on_cuda:
            usage.peak_memory_gb = torch.cuda.max_memory_allocated() / 1024**3
            usage.memory_kind = "CUDA memory"
        else:
            usage.peak_memory_gb = _process_peak_gb()


def _process_peak_gb() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return peak / 1024**3 if sys.platform == "darwin" else peak / 1024**2
