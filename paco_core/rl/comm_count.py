"""Counting the gradient all-reduces of a DDP-wrapped model (benches and tests).

DDP reduces gradients bucket by bucket after a synced backward pass; a communication hook
sees every bucket. The counter wraps the default all-reduce hook, so training is
unchanged, and counts the synced backward passes (rounds) and the bucket all-reduces.

Example:
    >>> counter = count_all_reduces(ddp_model)  # doctest: +SKIP
    >>> counter.rounds, counter.buckets  # doctest: +SKIP
    (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class AllReduceCounter:
    rounds: int = 0
    """Backward passes whose gradients were all-reduced (bucket 0 is part of every round)."""
    buckets: int = 0
    """Bucket all-reduces in all."""


def count_all_reduces(ddp_model: Any) -> AllReduceCounter:
    """Register a counting all-reduce hook on a ``DistributedDataParallel`` model (before its first backward)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    counter = AllReduceCounter()

    def hook(state, bucket):  # no annotations: DDP checks them against dist.GradBucket
        counter.buckets += 1
        if bucket.index() == 0:
            counter.rounds += 1
        return allreduce_hook(state, bucket)

    ddp_model.register_comm_hook(state=None, hook=hook)
    return counter
