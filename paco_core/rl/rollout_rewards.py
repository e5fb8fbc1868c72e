"""Scoring an iteration's rollouts with the training rewards, gathered over all processes.

Each process scores only the images it rolled out, into an ``(N, K)`` matrix of the whole
iteration (zeros elsewhere); the matrices and the invalid masks are summed across
processes, so every process ends with the same scores and computes the same advantages.

With a judge server, the trainer scores each micro-batch in a worker thread while the next
one rolls out (:func:`score_micro_batch`), then hands the results here in plan order: the
same calls on the same images, so the same scores as scoring after all rollouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from paco_core.rl.rewards import RewardScores, RewardSet
from paco_core.rl.rollout import Rollout


def score_micro_batch(rollout: Rollout, rewards: RewardSet) -> RewardScores:
    """Score one micro-batch's images with every training reward (a worker thread may run it)."""
    metadata = [rollout.row.metadata() for _ in rollout.images]
    # sampling.edit_size square: the judge sees the original squashed as the condition image
    if rollout.judge_original_size is not None:
        for meta in metadata:
            meta["judge_original_size"] = list(rollout.judge_original_size)
    prompts = [rollout.row.prompt] * len(rollout.images)
    return rewards.score(rollout.images, prompts, metadata)


def score_rollouts(
    rollouts: list[Rollout],
    rewards: RewardSet,
    num_samples: int,
    accelerator: Any,
    scored: list[RewardScores] | None = None,
) -> RewardScores:
    """Score this process's images, then sum the matrices of all processes.

    Args:
        rollouts: this process's micro-batches.
        rewards: the training rewards.
        num_samples: images in the iteration (all processes), N.
        accelerator: the ``accelerate.Accelerator`` (reduction across processes).
        scored: the micro-batches' scores when already computed (overlapped with the
            rollouts, :func:`score_micro_batch`), in the order of ``rollouts``.

    Returns:
        RewardScores ``(N, K)``, NaN where a reward could not score an image.
    """
    num_rewards = len(rewards.specs)
    values = torch.zeros(num_samples, num_rewards, dtype=torch.float64)
    invalid = torch.zeros(num_samples, num_rewards, dtype=torch.float64)
    failures: dict[str, int] = {}
    messages: dict[str, str] = {}
    for number, rollout in enumerate(rollouts):
        result = scored[number] if scored is not None else score_micro_batch(rollout, rewards)
        matrix = torch.from_numpy(result.scores)
        ids = torch.tensor(rollout.sample_ids)
        values[ids] = torch.nan_to_num(matrix, nan=0.0)
        invalid[ids] = torch.isnan(matrix).to(torch.float64)
        for name, count in result.failures.items():
            failures[name] = failures.get(name, 0) + count
            messages.setdefault(name, result.messages[name])
    if accelerator.num_processes > 1:
        values = _sum_over_processes(values, accelerator)
        invalid = _sum_over_processes(invalid, accelerator)
        for k, name in enumerate(rewards.names):
            total = int(invalid[:, k].sum().item())
            if total:
                failures[name] = total
                messages.setdefault(name, "failed on another process (see its log)")
    matrix = values.numpy().copy()
    matrix[invalid.numpy() > 0] = np.nan
    return RewardScores(rewards.names, matrix, failures, messages)


def _sum_over_processes(values: torch.Tensor, accelerator: Any) -> torch.Tensor:
    summed = accelerator.reduce(values.to(accelerator.device, torch.float32), reduction="sum")
    return summed.cpu().double()
