"""Training metrics that need numpy or torch: the per-step reward metrics, peak memory,
and the logger that also feeds TensorBoard.

The files themselves (``metrics.jsonl``, ``progress.json``) are written and read by
:mod:`paco_core.run_folder`, which needs neither torch nor numpy.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from paco_core.run_folder import RunFolder


class MetricsLogger:
    """Appends metric dicts to ``metrics.jsonl`` (and TensorBoard) on the main process only."""

    def __init__(self, output_dir: str | os.PathLike, *, enabled: bool = True, use_tensorboard: bool = False):
        self.run = RunFolder(output_dir)
        self.path = self.run.metrics_path
        self.enabled = enabled
        self._writer = None
        if enabled and use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run.tensorboard_dir))

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step`` (left by a run that stopped after its last checkpoint)."""
        if self.enabled:
            self.run.truncate_metrics_after(step)

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.run.append_metrics(step, values)
        if self._writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(name, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def peak_memory_gb(device: Any) -> float:
    """Peak GPU memory allocated (CUDA), else the process's peak resident memory, in GB."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(device) / 1024**3
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def nan_stat(function, values) -> float:
    """``function`` (np.nanmean, np.nanstd) of ``values``; NaN when none is finite."""
    values = np.asarray(values, dtype=np.float64)
    return float(function(values)) if np.isfinite(values).any() else float("nan")


def reward_metrics(scores, advantages, invalid_share: float, *, log_tamed: bool) -> dict[str, Any]:
    """The per-step reward and advantage metrics (see the README's metrics table).

    Args:
        scores: ``RewardScores`` of the whole iteration (all processes).
        advantages: ``Advantages`` computed from them.
        invalid_share: share of images left out.
        log_tamed: add each reward's std/mean ratio and whether it was log-tamed.
    """
    metrics: dict[str, Any] = {}
    for k, name in enumerate(scores.names):
        column = scores.scores[:, k]
        metrics[f"rewards/{name}/mean"] = nan_stat(np.nanmean, column)
        metrics[f"rewards/{name}/std"] = nan_stat(np.nanstd, column)
        metrics[f"rewards/{name}/invalid"] = int(np.isnan(column).sum())
        if log_tamed:
            metrics[f"rewards/{name}/cv"] = float(advantages.cv_ratios[k])
            metrics[f"rewards/{name}/log_tamed"] = bool(advantages.tamed[k])
    valid = advantages.valid
    values = advantages.values[valid]
    metrics["rewards/aggregated/mean"] = nan_stat(np.nanmean, advantages.aggregated)
    metrics["rewards/invalid_share"] = invalid_share
    metrics["advantages/mean"] = float(values.mean()) if values.size else 0.0
    metrics["advantages/std"] = float(values.std()) if values.size else 0.0
    metrics["advantages/abs_max"] = float(np.abs(values).max()) if values.size else 0.0
    metrics["advantages/num_valid"] = int(valid.sum())
    return metrics
