"""Multi-reward aggregation and per-prompt group advantages.

Input is a reward matrix ``(N, K)`` (N images, K rewards; NaN = could not be scored),
one weight per reward and the group (prompt) id of each image. Aggregation modes:

- ``weighted_sum``: r = sum_k w_k R_k, then group normalisation (the released PaCo-GRPO
  default, ``PerPromptStatTracker`` with no aggregate function).
- ``log_tamed`` (PaCo-GRPO): for each reward, h_k = std(R_k) / mean(R_k) over the batch;
  where h_k > delta the reward becomes log(1 + R_k) (order-preserving); then the weighted
  sum; then the group normalisation. delta = ``threshold``, or the mean of the h_k when
  ``threshold`` is 0. ``tameable`` limits the transform to some rewards (the paper tames
  the consistency and CLIP-T rewards).
- ``log_tamed_released``: the released ``log_tame_aggregate_fn`` (``PaCo-GRPO/config/grpo.py``),
  exactly: h_k = std(R_k) / (mean(R_k) + 1e-6) over the batch; the threshold is the mean
  (its default) or the median of the h_k, or a number (``released_threshold``); every reward
  with h_k above it becomes log(1 + R_k); the weighted sum IS the advantage (no per-prompt
  normalisation; only the clip to +-``clip_max`` the released loss applies).
- ``geometric_mean``: r = exp(sum_k w_k log R_k / sum_k w_k) (rewards must be > 0).
- ``advantage_sum``: each reward is group-normalised on its own; A = sum_k w_k A_k.

Group normalisation: A = (r - mean of the image's group) / (std + 1e-4), the std taken
per group or over the whole batch (``global_std``), then clipped to +-``clip_max``.
Images with any NaN reward, and groups with fewer than 2 scored images, are excluded
(advantage 0, ``valid`` False): an unscorable image never counts as a score of 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from paco_core.errors import InputError, RewardError

STD_EPS = 1e-4
AGGREGATIONS = ("weighted_sum", "log_tamed", "log_tamed_released", "geometric_mean", "advantage_sum")
RELEASED_CV_EPS = 1e-6
"""The released log-tame function's h = std / (mean + 1e-6)."""


@dataclass
class Advantages:
    """Result of :func:`compute_advantages`. Shapes ``(N,)`` unless noted."""

    values: np.ndarray
    valid: np.ndarray
    aggregated: np.ndarray
    """The aggregated reward per image (NaN where invalid; for advantage_sum the weighted sum)."""
    cv_ratios: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """``(K,)`` std/mean of each reward over the batch (log_tamed diagnostics)."""
    tamed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """``(K,)`` True where log(1 + r) was applied."""


def compute_advantages(
    rewards: np.ndarray,
    weights: np.ndarray | list[float],
    groups: np.ndarray | list[int],
    *,
    aggregation: str = "log_tamed",
    threshold: float = 0.2,
    global_std: bool = False,
    clip_max: float = 5.0,
    tameable: np.ndarray | list[bool] | None = None,
    released_threshold: float | str = "mean",
) -> Advantages:
    """Aggregate rewards and normalise them into clipped advantages.

    Args:
        rewards: ``(N, K)`` float array, NaN where a reward could not score an image.
        weights: ``(K,)`` non-negative weights.
        groups: ``(N,)`` group (prompt) id of each image.
        aggregation: one of ``weighted_sum``, ``log_tamed``, ``geometric_mean``, ``advantage_sum``.
        threshold: log-taming delta; 0 means "the mean of the ratios".
        global_std: use the batch std instead of each group's.
        clip_max: clip advantages to +-clip_max.
        tameable: ``(K,)`` which rewards log-taming may transform (default: all).
        released_threshold: ``log_tamed_released``: "mean", "median" or a number.

    Returns:
        Advantages.

    Example:
        >>> a = compute_advantages(np.array([[1.0], [3.0]]), [1.0], [0, 0], aggregation="weighted_sum")
        >>> np.round(a.values, 3).tolist()
        [-1.0, 1.0]
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim == 1:
        rewards = rewards[:, None]
    weights = np.asarray(weights, dtype=np.float64)
    groups = np.asarray(groups)
    if rewards.shape[1] != weights.shape[0]:
        raise InputError(
            f"{rewards.shape[1]} reward columns but {weights.shape[0]} weights; give one weight per reward"
        )
    if groups.shape[0] != rewards.shape[0]:
        raise InputError(
            f"{rewards.shape[0]} reward rows but {groups.shape[0]} group ids; give one group id per image"
        )
    valid = ~np.isnan(rewards).any(axis=1)
    valid = _drop_small_groups(valid, groups)
    num_rewards = rewards.shape[1]
    cv = np.zeros(num_rewards)
    tamed = np.zeros(num_rewards, dtype=bool)

    if aggregation == "log_tamed_released":
        aggregated, cv, tamed = released_log_tamed_sum(rewards, weights, valid, released_threshold)
        values = np.clip(np.where(valid, aggregated, 0.0), -clip_max, clip_max)
        return Advantages(values=values, valid=valid, aggregated=aggregated, cv_ratios=cv, tamed=tamed)
    if aggregation == "advantage_sum":
        values = np.zeros(rewards.shape[0])
        for k in range(num_rewards):
            values += weights[k] * _normalise(rewards[:, k], groups, valid, global_std)
        aggregated = np.where(valid, np.nan_to_num(rewards) @ weights, np.nan)
    else:
        if aggregation == "weighted_sum":
            aggregated = np.nan_to_num(rewards) @ weights
        elif aggregation == "log_tamed":
            cv = coefficient_of_variation(rewards[valid])
            delta = threshold if threshold > 0 else float(cv.mean())
            tamed = cv > delta
            if tameable is not None:
                tamed &= np.asarray(tameable, dtype=bool)
            adjusted = rewards.copy()
            adjusted[:, tamed] = np.log1p(adjusted[:, tamed])
            aggregated = np.nan_to_num(adjusted) @ weights
        elif aggregation == "geometric_mean":
            checked = rewards[valid]
            if (checked <= 0).any():
                raise RewardError(
                    "aggregation 'geometric_mean' needs positive rewards, got a minimum of "
                    f"{checked.min():.4g}; use 'weighted_sum' or 'log_tamed' for rewards that reach 0"
                )
            safe = np.where(valid[:, None], rewards, 1.0)
            aggregated = np.exp(np.log(safe) @ weights / weights.sum())
        else:
            raise InputError(f"aggregation should be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        aggregated = np.where(valid, aggregated, np.nan)
        values = _normalise(aggregated, groups, valid, global_std)
    values = np.clip(np.where(valid, values, 0.0), -clip_max, clip_max)
    return Advantages(values=values, valid=valid, aggregated=aggregated, cv_ratios=cv, tamed=tamed)


def released_log_tamed_sum(
    rewards: np.ndarray, weights: np.ndarray, valid: np.ndarray, threshold: float | str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The released ``log_tame_aggregate_fn`` on the valid rows: ``(aggregated (N,), h (K,), tamed (K,))``.

    h_k = std(R_k) / (mean(R_k) + 1e-6) over the valid images (population std, no absolute
    value); the threshold is the mean or the median of the h_k, or a number; log(1 + R_k)
    where h_k > threshold; then sum_k w_k R_k. Invalid rows are NaN.
    """
    checked = rewards[valid]
    if checked.shape[0]:
        cv = checked.std(axis=0) / (checked.mean(axis=0) + RELEASED_CV_EPS)
    else:
        cv = np.zeros(rewards.shape[1])
    if threshold == "mean":
        limit = float(np.mean(cv))
    elif threshold == "median":
        limit = float(np.median(cv))
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        limit = float(threshold)
    else:
        raise InputError(f"the released log-tame threshold is mean, median or a number, not {threshold!r}")
    tamed = cv > limit
    adjusted = rewards.copy()
    adjusted[:, tamed] = np.log(1 + adjusted[:, tamed])
    aggregated = np.where(valid, np.nan_to_num(adjusted) @ weights, np.nan)
    return aggregated, cv, tamed


def coefficient_of_variation(rewards: np.ndarray) -> np.ndarray:
    """``(K,)`` std / |mean| of each reward column (0 where the mean is 0)."""
    if rewards.shape[0] == 0:
        return np.zeros(rewards.shape[1])
    mean = rewards.mean(axis=0)
    std = rewards.std(axis=0)
    return np.divide(std, np.abs(mean), out=np.zeros_like(std), where=mean != 0)


def _drop_small_groups(valid: np.ndarray, groups: np.ndarray) -> np.ndarray:
    valid = valid.copy()
    for group in np.unique(groups):
        members = groups == group
        if valid[members].sum() < 2:
            valid[members] = False
    return valid


def _normalise(scores: np.ndarray, groups: np.ndarray, valid: np.ndarray, global_std: bool) -> np.ndarray:
    """(r - group mean) / (std + eps) over valid entries; invalid entries get 0."""
    out = np.zeros(scores.shape[0])
    if not valid.any():
        return out
    batch_std = scores[valid].std()
    for group in np.unique(groups):
        members = (groups == group) & valid
        if not members.any():
            continue
        group_scores = scores[members]
        std = batch_std if global_std else group_scores.std()
        out[members] = (group_scores - group_scores.mean()) / (std + STD_EPS)
    return out
