"""Copy a job's LoRA checkpoints into a LoRA folder (ComfyUI's ``models/loras/paco/<name>/``).

File names, for a job ``job-1a2b3c4d`` whose LoRA name is ``faces``, in ``<root>/faces/job-1a2b3c4d/``
(one folder per job: two jobs with one name never overwrite each other's files):

- ``faces-step<N>.safetensors``: the LoRA of ``checkpoint-<N>`` (every checkpoint the run
  folder holds; pruned checkpoints stay exported),
- ``faces-best.safetensors``: the best LoRA by the held-out metric (progress.json's
  ``best_lora``, else the best checkpoint's LoRA),
- ``faces.safetensors``: the final LoRA, once the job completed.

Each file is copied into a hidden temporary file beside it and renamed into place, so a
LoRA loader never sees half a file. A file already exported with the same size and a
modification time not older than the checkpoint's is not copied again.

No torch, no ComfyUI: :func:`export_job` takes the destination root.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from paco_core.errors import TrainingError
from paco_core.jobs.store import COMPLETED, MAX_NAME_CHARS, Job
from paco_core.run_folder import RunFolder


class ExportError(TrainingError):
    """A LoRA file could not be copied to the LoRA folder (disk full, no permission)."""


_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def lora_name(job: Job) -> str:
    """The job's LoRA name as a safe file / folder name (from the job name, else its id)."""
    name = _UNSAFE_RE.sub("-", job.name or "").strip(".-")[:MAX_NAME_CHARS].strip(".-")
    return name or job.id


def export_folder(root: str | os.PathLike, job: Job) -> Path:
    """``<root>/<lora name>/<job id>``: where the job's LoRA files go, its own (two jobs with
    one name never share a file) and stable (the same for the job's whole life)."""
    return Path(root) / lora_name(job) / job.id


def wanted_files(job: Job) -> dict[str, Path]:
    """``{exported file name: source lora.safetensors}`` for what the job has now ({} once its
    run folder belongs to another job, which resumed or overwrote it)."""
    from paco_core.jobs.runner import owns_run_dir

    if not owns_run_dir(job):
        return {}
    folder = RunFolder(job.run_dir)
    name = lora_name(job)
    wanted: dict[str, Path] = {}
    for checkpoint in folder.checkpoints():
        if checkpoint.lora_path.is_file():
            wanted[f"{name}-step{checkpoint.step}.safetensors"] = checkpoint.lora_path
    progress = folder.read_progress()
    best_candidates = [progress.get("best_lora")]  # the trainer's best-by-eval LoRA file
    for checkpoint in (job.best_checkpoint, progress.get("best_checkpoint")):
        best_candidates.append(str(Path(checkpoint) / "lora.safetensors") if checkpoint else None)
    best = next((Path(p) for p in best_candidates if p and Path(p).is_file()), None)
    if best is not None:
        wanted[f"{name}-best.safetensors"] = best
    if job.status == COMPLETED:
        latest = folder.latest_checkpoint()
        if latest is not None and latest.lora_path.is_file():
            wanted[f"{name}.safetensors"] = latest.lora_path
    return wanted


def export_job(job: Job, root: str | os.PathLike) -> list[Path]:
    """Copy the job's new or changed LoRA files into ``<root>/<lora name>/``; returns the files copied."""
    target = export_folder(root, job)
    copied = []
    for filename, source in wanted_files(job).items():
        destination = target / filename
        try:
            if _up_to_date(source, destination):
                continue
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{filename}.{os.getpid()}.tmp"
            shutil.copyfile(source, tmp)
            os.replace(tmp, destination)
        except FileNotFoundError:
            continue  # the checkpoint was pruned meanwhile
        except OSError as error:
            raise ExportError(
                f"cannot export the LoRA of job {job.id} to {str(destination)!r} ({error.strerror or error}): "
                "free disk space or fix the folder's permissions; the job's checkpoints are untouched"
            ) from error
        copied.append(destination)
    return copied


def _up_to_date(source: Path, destination: Path) -> bool:
    try:
        have, new = destination.stat(), source.stat()
    except FileNotFoundError:
        return False
    return have.st_size == new.st_size and have.st_mtime >= new.st_mtime


def exported_files(job: Job, root: str | os.PathLike) -> list[Path]:
    """The job's LoRA files present in ``<root>/<lora name>/``, sorted by name."""
    folder = export_folder(root, job)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and not p.name.startswith("."))
