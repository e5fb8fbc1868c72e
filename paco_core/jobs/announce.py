"""One sentence for a job's end and one for its lineage: the words the sidebar's toast and
browser notification use (web/paco_jobs/notify.js) and the Training Job node's status shows.

Example:
    >>> end_message("completed", name="faces", steps=200, best_lora="paco/faces/faces-best.safetensors")
    'PaCo job completed: faces: 200 steps; best LoRA paco/faces/faces-best.safetensors'
"""

from __future__ import annotations

from paco_core.jobs.store import Job


def end_message(
    status: str, *, name: str, steps: int, best_lora: str | None = None, error: str | None = None
) -> str | None:
    """The sentence for a job that ended with ``status``; None while it has not ended."""
    if status == "completed":
        return f"PaCo job completed: {name}: {steps} steps" + (
            f"; best LoRA {best_lora}" if best_lora else ""
        )
    if status in ("failed", "interrupted"):
        lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
        reason = lines[-1][:240] if lines else "no reason recorded (see its log)"
        return f"PaCo job {status}: {name}: {reason}"
    if status == "stopped":
        return f"PaCo job stopped: {name} stopped at step {steps}; Resume continues it."
    return None


def job_end_message(job: Job, best_lora: str | None = None) -> str | None:
    steps = job.total if job.status == "completed" else job.step
    return end_message(job.status, name=job.name or job.id, steps=steps, best_lora=best_lora, error=job.error)


def lineage_message(job: Job, parent: Job | None) -> str | None:
    """``continues job-1a2b3c4d (faces) from step 200``, or None for a job that continues nothing."""
    if not job.parent_id:
        return None
    label = f"{job.parent_id} ({parent.name})" if parent is not None else f"{job.parent_id} (deleted)"
    return f"continues {label} from step {job.parent_step}"
