"""The order of queued jobs: positions, and moving a job up, down or to the front (docs/jobs.md).

Each device has one queue, ordered by the jobs' ``queue_rank`` (their creation time unless
moved); :func:`paco_core.jobs.runner.dispatch` starts the first one when the device is free.
Only queued jobs move; a running job keeps its device.
"""

from __future__ import annotations

from paco_core.errors import InputError
from paco_core.jobs import store as st
from paco_core.jobs.store import Job, JobStateError, JobStore

MOVES = ("up", "down", "front")


def queue(store: JobStore, device: str) -> list[Job]:
    """The queued jobs of ``device``, first to start first."""
    jobs = store.list(statuses=(st.QUEUED,), device=device)
    return sorted(jobs, key=_order_key)


def positions(store: JobStore) -> dict[str, int]:
    """``{job id: 1-based position in its device's queue}`` for every queued job."""
    found: dict[str, int] = {}
    for device in sorted({job.device for job in store.list(statuses=(st.QUEUED,))}):
        found.update({job.id: number for number, job in enumerate(queue(store, device), start=1)})
    return found


def move(store: JobStore, job_id: str, where: str) -> Job:
    """Move queued job ``job_id`` one place up or down in its device's queue, or to its front.

    Moving the first job up (or the last down) changes nothing.

    Raises:
        JobNotFoundError / JobStateError: unknown id, or the job is not queued.
        InputError: ``where`` is not up, down or front.
    """
    if where not in MOVES:
        raise InputError(f"move {where!r}: choose one of {', '.join(MOVES)}")
    with store.transaction() as connection:
        row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise st.JobNotFoundError(store.not_found_message(job_id))
        job = Job.from_row(row)
        if job.status != st.QUEUED:
            raise JobStateError(f"job {job_id} is {job.status}; only queued jobs can be moved")
        rows = connection.execute(
            "SELECT * FROM jobs WHERE status = ? AND device = ?", (st.QUEUED, job.device)
        ).fetchall()
        line = sorted((Job.from_row(r) for r in rows), key=_order_key)
        ranks = [_order_key(j)[0] for j in line]
        ids = [j.id for j in line]
        index = ids.index(job_id)
        ids.pop(index)
        target = {"up": max(0, index - 1), "down": min(len(ids), index + 1), "front": 0}[where]
        ids.insert(target, job_id)
        for position, (moved, rank) in enumerate(zip(ids, sorted(ranks), strict=True)):
            st.update_job(connection, store, moved, queue_rank=rank + position * 1e-6)
    return store.get(job_id)


def _order_key(job: Job) -> tuple[float, float, str]:
    rank = job.queue_rank if job.queue_rank is not None else job.created_at
    return (rank, job.created_at, job.id)
