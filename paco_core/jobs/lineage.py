"""Continue training: a completed or stopped job goes on as a new job (docs/jobs.md).

The new job (the child) starts from the parent's last checkpoint, or from the checkpoint of
its best held-out evaluation, with a new iteration budget (so many more iterations). Its run
folder starts as a copy of the parent's up to that step (the checkpoint's files hard-linked
when the file system allows, else copied; the metrics up to that step; the best LoRA), and
its trainer resumes from that checkpoint under the usual resume rules (docs/runs.md): the
curves join, and every setting but the budget is the parent's. The child records its parent
and the step (``parent_id``, ``parent_step``); :func:`lineage` lists the chain.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from paco_core.errors import InputError
from paco_core.io import atomic_write_text
from paco_core.jobs import runner
from paco_core.jobs import store as st
from paco_core.jobs.store import Job, JobStateError, JobStore
from paco_core.run_folder import Checkpoint, RunFolder
from paco_core.run_requests import PROMPT_REWARDS_FILE

CONTINUABLE_STATUSES = (st.COMPLETED, st.STOPPED)
STARTS = ("last", "best")


def continue_job(
    store: JobStore,
    job_id: str,
    *,
    iterations: int,
    start_from: str = "last",
    name: str | None = None,
    start: bool = True,
) -> Job:
    """Queue a new job that continues ``job_id`` for ``iterations`` more iterations.

    Args:
        iterations: how many iterations the child trains past its starting step (>= 1).
        start_from: ``last`` (the newest intact checkpoint) or ``best`` (the checkpoint of
            the best held-out evaluation; it must still exist as a full checkpoint).
        name: the child's name (default: the parent's with ``-continued``).

    Raises:
        JobStateError: the parent is queued, running, failed or interrupted (resume those).
        InputError: iterations < 1, no checkpoint to start from, an unknown ``start_from``.
    """
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise InputError(
            f"iterations should be a whole number >= 1 (how many more to train), got {iterations!r}"
        )
    if start_from not in STARTS:
        raise InputError(f"start_from should be one of {', '.join(STARTS)}, got {start_from!r}")
    runner.reconcile(store)
    parent = store.get(job_id)
    if parent.status not in CONTINUABLE_STATUSES:
        hint = (
            f"; resume it instead (`paco jobs resume {job_id}`)"
            if parent.status in st.RESUMABLE_STATUSES
            else ""
        )
        raise JobStateError(
            f"job {job_id} is {parent.status}; only completed or stopped jobs can be continued{hint}"
        )
    checkpoint = _starting_checkpoint(parent, start_from)
    child_id = st.new_job_id()
    while store.find(child_id) is not None:
        child_id = st.new_job_id()
    run_dir = store.runs_dir / child_id
    config = {**parent.config, "num_iterations": checkpoint.step + iterations, "output_dir": str(run_dir)}
    seed_run_folder(RunFolder(parent.run_dir), checkpoint, run_dir)
    child = store.create(
        name=name or f"{parent.name}-continued",
        config=config,
        run_dir=run_dir,
        device=parent.device,
        launch=parent.launch,
        gpu_policy=parent.gpu_policy,
        job_id=child_id,
        parent_id=parent.id,
        parent_step=checkpoint.step,
    )
    store.update(
        child.id, resume=True, step=checkpoint.step, last_checkpoint=str(run_dir / checkpoint.path.name)
    )
    if start:
        runner.dispatch(store)
    return store.get(child.id)


def _starting_checkpoint(parent: Job, start_from: str) -> Checkpoint:
    folder = RunFolder(parent.run_dir)
    if start_from == "last":
        checkpoint = folder.latest_intact_checkpoint()
        if checkpoint is None:
            raise InputError(f"job {parent.id} has no intact checkpoint to continue from; submit a new job")
        return checkpoint
    progress = folder.read_progress()
    step = progress.get("best_step")
    if not isinstance(step, int):
        raise InputError(f"job {parent.id} has no best evaluation; continue from its last checkpoint")
    checkpoint = folder.checkpoint(step)
    if checkpoint is None:
        raise InputError(
            f"job {parent.id}'s best evaluation (step {step}) has no full checkpoint (not a checkpoint step, "
            "or pruned); continue from its last checkpoint"
        )
    checkpoint.verify()
    return checkpoint


def seed_run_folder(parent: RunFolder, checkpoint: Checkpoint, run_dir: Path) -> None:
    """The child's run folder: the checkpoint, the metrics up to its step, the best LoRA and
    the per-prompt rewards (files hard-linked when possible: checkpoints never change)."""
    child = RunFolder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = run_dir / f".{checkpoint.path.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(checkpoint.path, staging, copy_function=_link_or_copy)
    os.replace(staging, child.checkpoint_path(checkpoint.step))
    lines = [
        json.dumps(r, sort_keys=True) + "\n" for r in parent.iter_metrics() if r["step"] <= checkpoint.step
    ]
    atomic_write_text(child.metrics_path, "".join(lines))
    best = parent.read_best()
    if best and isinstance(best.get("step"), int) and best["step"] <= checkpoint.step:
        shutil.copytree(parent.best_dir, child.best_dir, copy_function=_link_or_copy, dirs_exist_ok=True)
    rewards = parent.path / PROMPT_REWARDS_FILE
    if rewards.is_file():
        shutil.copy2(rewards, run_dir / PROMPT_REWARDS_FILE)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def lineage(store: JobStore, job_id: str) -> list[Job]:
    """The job and its ancestors, oldest first (a parent deleted from the store ends the chain)."""
    chain = [store.get(job_id)]
    seen = {job_id}
    while chain[0].parent_id and chain[0].parent_id not in seen:
        parent = store.find(chain[0].parent_id)
        if parent is None:
            break
        seen.add(parent.id)
        chain.insert(0, parent)
    return chain


def children(store: JobStore, job_id: str) -> list[Job]:
    """The jobs that continue ``job_id``, oldest first."""
    return [job for job in store.list() if job.parent_id == job_id]
