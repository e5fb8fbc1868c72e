"""How an iteration's images are cut into micro-batches, shared by processes and accumulated.

Images of an iteration are numbered group by group: row ``g`` owns sample ids
``g*G .. g*G + G - 1``. Each group is cut into micro-batches of ``batch_size`` images
(one transformer call each); micro-batch ``j`` runs on process ``j % num_processes``.
For the update, a process's micro-batches are taken in order and grouped into
accumulation windows of ``gradient_accumulation_steps``: one optimizer step per window.

Example:
    >>> [p.sample_ids for p in plan_micro_batches(num_rows=2, group_size=4, batch_size=2)]
    [[0, 1], [2, 3], [4, 5], [6, 7]]
    >>> accumulation_windows(num_micro_batches=3, accumulation_steps=2)
    [[0, 1], [2]]
"""

from __future__ import annotations

from dataclasses import dataclass

from paco_core.errors import ConfigError


@dataclass
class MicroBatchPlan:
    """Micro-batch ``index`` of an iteration: images ``sample_ids`` of group ``group``."""

    index: int
    group: int
    sample_ids: list[int]


def plan_micro_batches(num_rows: int, group_size: int, batch_size: int) -> list[MicroBatchPlan]:
    """All micro-batches of an iteration, group by group (``group_size`` is a multiple of ``batch_size``)."""
    plans = []
    per_group = group_size // batch_size
    for index in range(num_rows * per_group):
        group, part = divmod(index, per_group)
        start = group * group_size + part * batch_size
        plans.append(MicroBatchPlan(index, group, list(range(start, start + batch_size))))
    return plans


def plans_of_process(
    plans: list[MicroBatchPlan], num_processes: int, process_index: int
) -> list[MicroBatchPlan]:
    """The micro-batches that process ``process_index`` runs (round-robin)."""
    return [plan for plan in plans if plan.index % num_processes == process_index]


def check_processes_share_equally(num_micro_batches: int, num_processes: int) -> None:
    """Every process must run as many micro-batches (DDP needs the same number of backward passes)."""
    if num_micro_batches % num_processes:
        raise ConfigError(
            f"{num_micro_batches} micro-batches per step (prompts_per_iteration x group_size / batch_size) cannot "
            f"be shared equally by {num_processes} processes; make it a multiple of {num_processes}"
        )


def accumulation_windows(num_micro_batches: int, accumulation_steps: int) -> list[list[int]]:
    """Positions of the micro-batches that each optimizer step accumulates, in order.

    The last window is shorter when ``accumulation_steps`` does not divide the count; each
    step's gradient is the mean over its own window, so a short window is not scaled down.
    """
    return [
        list(range(start, min(start + accumulation_steps, num_micro_batches)))
        for start in range(0, num_micro_batches, accumulation_steps)
    ]


def split_windows(num_micro_batches: int, num_steps: int) -> list[list[int]]:
    """Cut ``num_micro_batches`` positions into ``num_steps`` contiguous windows of near-equal size.

    The released trainer takes a fixed number of optimizer steps per iteration (2) by
    accumulating over that share of the micro-batches; the first windows take one more
    micro-batch when the count does not divide evenly. Each step averages its own window.

    Example:
        >>> split_windows(5, 2)
        [[0, 1, 2], [3, 4]]
    """
    if num_steps > num_micro_batches:
        raise ConfigError(
            f"optim.optimizer_steps_per_iteration is {num_steps} but a process has only {num_micro_batches} "
            "micro-batches per pass; lower it or raise sampling.prompts_per_iteration"
        )
    size, extra = divmod(num_micro_batches, num_steps)
    windows, start = [], 0
    for index in range(num_steps):
        end = start + size + (1 if index < extra else 0)
        windows.append(list(range(start, end)))
        start = end
    return windows
