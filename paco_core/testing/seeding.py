"""Local seeding: build random weights reproducibly without touching the caller's RNG state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded to ``seed``; restore the previous state after.

    Model constructors draw their initial weights from torch's global generator, so this
    is how a tiny model gets the same weights in every process.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
