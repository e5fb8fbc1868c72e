"""Training jobs as ComfyUI sees them: the store in the user directory, the LoRA export
folder under models/loras, job records with progress, ETA and latest metrics.

Shared by the training nodes (:mod:`.training`), the watcher thread (:mod:`.jobs_watch`)
and the routes (:mod:`.routes`). No torch here.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from paco_core.jobs import runner
from paco_core.jobs.export import export_job
from paco_core.jobs.store import Job, JobStore
from paco_core.run_folder import RunFolder

EXPORT_SUBFOLDER = "paco"
"""Sub-folder of ComfyUI's first loras folder that receives the jobs' LoRAs."""
COMFY_PAUSE_PREFIX = "comfyui"


def comfy_pause_holder() -> str:
    """This ComfyUI's name for its pause requests in a run folder (``control/pause-comfyui-<pid>.json``):
    one per ComfyUI process, so two ComfyUIs on one user folder never end each other's pause."""
    return f"{COMFY_PAUSE_PREFIX}-{os.getpid()}"


def jobs_home() -> Path:
    """``<ComfyUI user directory>/paco``: where ComfyUI's job store lives."""
    from . import comfy_bridge

    return Path(comfy_bridge.user_directory()) / "paco"


_stores: dict[Path, JobStore] = {}


def job_store() -> JobStore:
    """The job store of this ComfyUI (opened once per home folder)."""
    home = jobs_home()
    if home not in _stores:
        _stores[home] = JobStore(home)
    return _stores[home]


def lora_export_root() -> Path:
    """``models/loras/paco``: the jobs' LoRAs, listed by PaCo LoRA and LoraLoader after a refresh."""
    from . import comfy_bridge

    return Path(comfy_bridge.first_model_folder("loras")) / EXPORT_SUBFOLDER


def export_loras(job: Job) -> list[Path]:
    """Copy the job's new checkpoints' LoRAs into ``models/loras/paco/<lora name>/``."""
    return export_job(job, lora_export_root())


def lora_choice(path: Path) -> str:
    """The name ComfyUI lists for an exported LoRA file (relative to its loras folder, ``/``-separated)."""
    return path.relative_to(lora_export_root().parent).as_posix()


def comfy_device_slot() -> str:
    """ComfyUI's device as a job queue name (``cpu``, ``cuda:0``, ...)."""
    from . import comfy_bridge

    device = str(comfy_bridge.comfy_device())
    return runner.device_slot("cuda:0" if device == "cuda" else device)


def gpu_policy(job: Job) -> str:
    """``yield`` or ``exclusive``: the trainer's config key wins over the store column."""
    return str(job.config.get("gpu_policy") or job.gpu_policy or "exclusive")


def latest_metrics(job: Job) -> dict[str, Any]:
    """The last line of the job's ``metrics.jsonl`` (finite numbers only), or {}."""
    lines = RunFolder(job.run_dir).read_metrics()
    if not lines:
        return {}
    return {k: v for k, v in lines[-1].items() if plain_number(v)}


def eta_seconds(job: Job, metrics: dict[str, Any] | None = None) -> float | None:
    """Seconds left for an active job: the steps to go times the last step's duration; None when unknown."""
    if not job.is_active or not job.total or job.step >= job.total:
        return None
    per_step = (metrics if metrics is not None else latest_metrics(job)).get("time/step_s")
    if not plain_number(per_step) or per_step <= 0:
        return None
    return round((job.total - job.step) * float(per_step), 1)


def plain_number(value: Any) -> bool:
    """A finite int or float (not a bool): what the events and the metric series carry."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def job_event(job: Job) -> dict[str, Any]:
    """The ``paco.job`` websocket payload: the job record plus ``eta_s`` and ``metrics``."""
    metrics = latest_metrics(job)
    return {**job.to_record(), "eta_s": eta_seconds(job, metrics), "metrics": metrics, "sent_at": time.time()}


def job_detail(job: Job) -> dict[str, Any]:
    """``GET /paco/jobs/{id}``: the record plus ``progress`` (progress.json), ``warnings``, ``eta_s``."""
    folder = RunFolder(job.run_dir)
    progress = folder.read_progress()
    warnings: list[dict[str, Any]] = []
    if not Path(job.run_dir).is_dir():
        warnings.append(
            {
                "code": "run_folder_missing",
                "message": f"the run folder {job.run_dir} is gone: no metrics, samples or checkpoints",
            }
        )
    listed = progress.get("warnings")
    if isinstance(listed, list):  # the trainer's guardrail warnings ({"code", "message", ...})
        warnings.extend(w if isinstance(w, dict) else {"code": "trainer", "message": str(w)} for w in listed)
    record = job.to_record()
    record["progress"] = progress
    record["warnings"] = warnings
    record["eta_s"] = eta_seconds(job)
    record["lora_files"] = [lora_choice(p) for p in exported(job)]
    samples = folder.sample_paths()
    record["sample_step"] = samples[-1][0] if samples else None  # the step the latest grid shows
    return record


def exported(job: Job) -> list[Path]:
    from paco_core.jobs.export import exported_files

    return exported_files(job, lora_export_root())


def job_label(job: Job) -> str:
    """A dropdown entry for a job: ``job-1a2b3c4d · name``."""
    return job.id if job.name == job.id else f"{job.id} · {job.name}"


def reward_folders() -> list[str]:
    """Where jobs from ComfyUI load user rewards: ``<user dir>/paco/rewards``, then PACO_REWARD_FOLDERS."""
    from paco_core import settings

    return list(dict.fromkeys([str(jobs_home() / "rewards"), *settings.reward_folders()]))


def env_for_jobs() -> dict[str, str]:
    """The environment jobs started from ComfyUI record: ComfyUI's own, with the reward folders
    and PACO_ALLOW_REWARD_IMPORTS as ComfyUI reads them (off unless the user set it)."""
    from paco_core import settings

    return {
        **os.environ,
        settings.REWARD_FOLDERS: os.pathsep.join(reward_folders()),
        settings.ALLOW_REWARD_IMPORTS: "1" if settings.allow_reward_imports(default=False) else "0",
    }
