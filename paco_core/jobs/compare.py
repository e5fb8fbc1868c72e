"""Compare runs: two or more jobs of one pipeline kind side by side (docs/jobs.md).

:func:`compare` gives one row per job (the table ``paco jobs compare`` prints and the
sidebar shows): progress, the latest training reward, the latest and best held-out score,
the median seconds per step and the latest sample grid. :func:`curves` gives the series
the sidebar overlays: the aggregated training reward and the held-out metric of each job.
"""

from __future__ import annotations

import statistics
from typing import Any

from paco_core.errors import InputError
from paco_core.families import DEFAULT_KIND
from paco_core.jobs.curves import _finite
from paco_core.jobs.store import Job, JobStore
from paco_core.run_folder import RunFolder

TRAIN_METRIC = "rewards/aggregated/mean"
COLUMNS = ("id", "name", "status", "kind", "step", "total", "train_reward", "held_out", "best_held_out",
           "best_step", "s_per_step", "sample")  # fmt: skip


def comparable_jobs(store: JobStore, job_ids: list[str]) -> list[Job]:
    """The jobs, checked: two or more different ids, all of one pipeline kind.

    Raises:
        JobNotFoundError: an unknown id.
        InputError: fewer than two jobs, or jobs of different kinds.
    """
    ids = list(dict.fromkeys(job_ids))
    if len(ids) < 2:
        raise InputError(f"compare needs two or more different jobs, got {len(ids)}: name another job id")
    jobs = [store.get(job_id) for job_id in ids]
    kinds = {job.id: kind_of(job) for job in jobs}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{job_id} trains {kind}" for job_id, kind in kinds.items())
        raise InputError(f"jobs of different kinds cannot be compared ({listed}); compare jobs of one kind")
    return jobs


def kind_of(job: Job) -> str:
    return str((job.config.get("model") or {}).get("kind") or DEFAULT_KIND)


def held_out_metric(job: Job, folder: RunFolder) -> str | None:
    """The held-out metric: the config's ``best_metric``, else the first eval reward mean."""
    chosen = job.config.get("best_metric") or folder.read_progress().get("best_metric")
    if chosen:
        return str(chosen)
    names = [n for n in folder.metric_names() if n.startswith("eval/rewards/") and n.endswith("/mean")]
    return names[0] if names else None


def compare(store: JobStore, job_ids: list[str]) -> list[dict[str, Any]]:
    """One row per job (see :data:`COLUMNS`); numbers are None when the run has none yet."""
    rows = []
    for job in comparable_jobs(store, job_ids):
        folder = RunFolder(job.run_dir)
        progress = folder.read_progress()
        metric = held_out_metric(job, folder)
        train = _points(folder, TRAIN_METRIC)
        held = _points(folder, metric) if metric else []
        times = [value for _, value in _points(folder, "time/step_s")]
        sample = folder.latest_sample()
        rows.append(
            {
                "id": job.id,
                "name": job.name,
                "status": job.status,
                "kind": kind_of(job),
                "step": job.step,
                "total": job.total,
                "train_reward": train[-1][1] if train else None,
                "held_out": held[-1][1] if held else None,
                "held_out_metric": metric,
                "best_held_out": progress.get("best_value") if _finite(progress.get("best_value")) else None,
                "best_step": progress.get("best_step"),
                "s_per_step": statistics.median(times) if times else None,
                "sample": str(sample) if sample else None,
                "parent_id": job.parent_id,
            }
        )
    return rows


def curves(store: JobStore, job_ids: list[str]) -> list[dict[str, Any]]:
    """``[{"id", "name", "train": [[step, value]...], "held_out": [...], "held_out_metric"}]``."""
    found = []
    for job in comparable_jobs(store, job_ids):
        folder = RunFolder(job.run_dir)
        metric = held_out_metric(job, folder)
        found.append(
            {
                "id": job.id,
                "name": job.name,
                "held_out_metric": metric,
                "train": [list(p) for p in _points(folder, TRAIN_METRIC)],
                "held_out": [list(p) for p in _points(folder, metric)] if metric else [],
            }
        )
    return found


def _points(folder: RunFolder, name: str) -> list[tuple[int, float]]:
    return [(step, float(value)) for step, value in folder.metric_series(name) if _finite(value)]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table (what ``paco jobs compare`` prints)."""
    header = ("ID", "NAME", "STATUS", "STEP", "TRAIN", "HELD-OUT", "BEST (STEP)", "S/STEP", "SAMPLE")
    lines = [header]
    for row in rows:
        best = "-" if row["best_held_out"] is None else f"{row['best_held_out']:.4g} ({row['best_step']})"
        lines.append(
            (
                row["id"],
                row["name"],
                row["status"],
                f"{row['step']}/{row['total']}",
                _number(row["train_reward"]),
                _number(row["held_out"]),
                best,
                _number(row["s_per_step"]),
                row["sample"] or "-",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  "
        + str(line[-1])
        for line in lines
    )


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
