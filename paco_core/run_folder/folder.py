"""A training run's output folder: its paths, config, progress, samples, checkpoints, best LoRA,
ownership by a job and clean-up (its checkpoints, metrics and pause requests mix in from
their own modules)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, TrainingError
from paco_core.io import atomic_write_json
from paco_core.run_folder.checkpoints import RunCheckpoints
from paco_core.run_folder.layout import (
    BEST_DIR,
    BEST_INFO_FILE,
    CHECKPOINT_PATTERN,
    CHECKPOINT_PREFIX,
    CONFIG_FILE,
    CONTROL_DIR,
    LOCK_FILE,
    LORA_FILE,
    METRICS_FILE,
    OWNER_FILE,
    PAUSE_PREFIX,
    PROGRESS_FILE,
    PROGRESS_STATES,
    SAMPLE_PATTERN,
    SAMPLES_DIR,
    TENSORBOARD_DIR,
)
from paco_core.run_folder.lock import RunLock
from paco_core.run_folder.metrics import MetricsLog
from paco_core.run_folder.pause import PauseRequests
from paco_core.run_folder.processes import process_start_time

logger = logging.getLogger(__name__)


_RUN_CONTROL_NAME = re.compile(r"^(?:(?:sample|save)-now|done-(?:sample|save))\.json$")
"""Files the run's requests leave in ``control/`` (``paco_core.run_requests``)."""
_REQUESTED_SAMPLES = "requested"
"""``samples/requested/``: the "sample now" grids."""


def _remove_run_files_in(folder: Path) -> None:
    """Delete the run's own files in ``samples/`` or ``control/`` (sample grids, pause and request
    files, the "sample now" grids), never a user's."""
    for child in os.listdir(folder):
        path = folder / child
        if path.is_symlink():
            continue
        if SAMPLE_PATTERN.match(child) or child.startswith(PAUSE_PREFIX) or _RUN_CONTROL_NAME.match(child):
            path.unlink()
        elif child == _REQUESTED_SAMPLES and path.is_dir():
            for grid in os.listdir(path):
                if SAMPLE_PATTERN.match(grid):
                    (path / grid).unlink()
            if not os.listdir(path):
                path.rmdir()


class RunFolder(RunCheckpoints, MetricsLog, PauseRequests):
    """A training run's output folder (need not exist yet). Every method is torch-free.

    Its checkpoints (:class:`RunCheckpoints`), metrics (:class:`MetricsLog`) and pause requests
    (:class:`PauseRequests`) have modules of their own.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def progress_path(self) -> Path:
        return self.path / PROGRESS_FILE

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES_DIR

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def lock(self) -> RunLock:
        """The folder's :class:`RunLock` (not yet acquired)."""
        return RunLock(self.path)

    # state of the folder
    def check_usable(self) -> None:
        """Raise TrainingError unless the path is a folder or does not exist yet."""
        if self.path.exists() and not self.path.is_dir():
            raise TrainingError(
                f"output_dir {str(self.path)!r} is a file, not a folder: give a folder path for the run"
            )

    def used_entries(self) -> list[str]:
        """Names of what an earlier run left here (config, progress, metrics, samples,
        checkpoints, TensorBoard); empty for a new or empty folder. Unrelated files and
        the lock do not count."""
        if not self.path.is_dir():
            return []
        names = []
        for entry in sorted(os.listdir(self.path)):
            if entry in (
                CONFIG_FILE,
                PROGRESS_FILE,
                METRICS_FILE,
                SAMPLES_DIR,
                TENSORBOARD_DIR,
                BEST_DIR,
            ) or (CHECKPOINT_PATTERN.match(entry) or _is_staging_name(entry)):
                names.append(entry)
        return names

    def remove_run_entries(self, *, extra: tuple[str, ...] = ()) -> list[str]:
        """Delete what a run wrote here (:meth:`used_entries`, ``control/``, the lock, ``job.json``
        and the ``extra`` names), never anything else: a user's own files in the folder, or in
        ``samples/`` and ``control/``, stay. A link is removed, never followed. Returns the names.

        Raises:
            InputError: something could not be deleted (named, with the reason).
        """
        if not self.path.is_dir():
            return []
        names = [*self.used_entries(), CONTROL_DIR, LOCK_FILE, OWNER_FILE, *extra]
        names += [n for n in os.listdir(self.path) if n.startswith(f".{LOCK_FILE}.stale.")]
        removed = []
        for name in dict.fromkeys(names):
            path = self.path / name
            if not (path.exists() or path.is_symlink()):
                continue
            try:
                if name in (SAMPLES_DIR, CONTROL_DIR) and path.is_dir() and not path.is_symlink():
                    _remove_run_files_in(path)  # only the run's own files inside
                    if os.listdir(path):
                        continue
                    path.rmdir()
                elif path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as error:
                raise InputError(
                    f"cannot delete {str(path)!r} ({error.strerror or error}); the other run files were "
                    "deleted: fix the permission and delete again"
                ) from error
            removed.append(name)
        return removed

    # ownership by a job (paco jobs)
    def read_owner(self) -> str | None:
        """The id of the job that owns the folder (``job.json``), or None (none, or unreadable)."""
        try:
            record = json.loads((self.path / OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        owner = record.get("job_id") if isinstance(record, dict) else None
        return owner if isinstance(owner, str) else None

    def write_owner(self, job_id: str, *, store: str = "") -> Path:
        """Record ``job_id`` as the folder's owner (creates the folder), atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(
            self.path / OWNER_FILE, {"job_id": job_id, "store": store, "since": time.time()}
        )

    def is_used(self) -> bool:
        return bool(self.used_entries())

    def result_entries(self) -> list[str]:
        """The part of :meth:`used_entries` that holds training results: metrics lines,
        samples, checkpoints. A run that failed before its first step leaves none (only its
        config, progress or TensorBoard folder), so starting afresh loses nothing."""
        results = []
        for name in self.used_entries():
            path = self.path / name
            if name == METRICS_FILE and not any(True for _ in self.iter_metrics()):
                continue
            if name in (CONFIG_FILE, PROGRESS_FILE, TENSORBOARD_DIR) or _is_staging_name(name):
                continue
            if name == SAMPLES_DIR and not self.sample_paths():
                continue
            if path.exists():
                results.append(name)
        return results

    def has_results(self) -> bool:
        """Whether an earlier run left results here (see :meth:`result_entries`)."""
        return bool(self.result_entries())

    def clear(self) -> list[str]:
        """Delete what an earlier run left (see :meth:`used_entries`); other files stay.

        Raises:
            TrainingError: something could not be deleted.
        """
        removed = self.used_entries()
        for name in removed:
            path = self.path / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as error:
                raise TrainingError(f"cannot delete {str(path)!r} to start over: {error}") from error
        return removed

    # config
    def write_config(self, data: dict[str, Any]) -> Path:
        """Write the run's resolved config (a plain dict), atomically."""
        return atomic_write_json(self.config_path, data)

    def read_config(self) -> dict[str, Any]:
        """The saved config dict, or {} when there is none.

        Raises:
            TrainingError: the file is not a JSON object.
        """
        return _read_json_object(self.config_path, missing={})

    # progress
    def write_progress(self, *, state: str, step: int, total: int, **extra: Any) -> dict[str, Any]:
        """Rewrite ``progress.json`` atomically (with this process's pid and the time); returns the record."""
        if state not in PROGRESS_STATES:
            raise ValueError(f"progress state {state!r} is not one of {', '.join(PROGRESS_STATES)}")
        record = {
            "state": state,
            "step": step,
            "total": total,
            "pid": os.getpid(),
            "pid_start_time": process_start_time(os.getpid()),
            "updated_at": time.time(),
            **extra,
        }
        atomic_write_json(self.progress_path, record)
        return record

    def read_progress(self) -> dict[str, Any]:
        """The last progress record, or {} when there is none (or it is unreadable)."""
        try:
            return _read_json_object(self.progress_path, missing={})
        except TrainingError as error:
            logger.warning("%s", error)
            return {}

    # samples
    def sample_path(self, step: int) -> Path:
        """Where the evaluation sample grid of ``step`` goes: ``samples/step-000010.png``."""
        return self.samples_dir / f"step-{step:06d}.png"

    def sample_paths(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every sample grid, oldest first."""
        if not self.samples_dir.is_dir():
            return []
        found = []
        for entry in os.listdir(self.samples_dir):
            match = SAMPLE_PATTERN.match(entry)
            if match:
                found.append((int(match.group(1)), self.samples_dir / entry))
        return sorted(found)

    def latest_sample(self) -> Path | None:
        found = self.sample_paths()
        return found[-1][1] if found else None

    # the best checkpoint (held-out guardrail, docs/guardrail.md)
    @property
    def best_dir(self) -> Path:
        return self.path / BEST_DIR

    @property
    def best_lora_path(self) -> Path:
        """``best/lora.safetensors``: the (EMA) LoRA of the best evaluation so far (may not exist)."""
        return self.best_dir / LORA_FILE

    def read_best(self) -> dict[str, Any]:
        """``best/best.json`` (metric, mode, value, step, lora), or {} when there is none or it is unreadable."""
        try:
            record = _read_json_object(self.best_dir / BEST_INFO_FILE, missing={})
        except TrainingError as error:
            logger.warning("%s", error)
            return {}
        return record if record and self.best_lora_path.is_file() else {}

    def write_best_info(self, record: dict[str, Any]) -> Path:
        """Write ``best/best.json`` atomically (after the LoRA file it describes)."""
        return atomic_write_json(self.best_dir / BEST_INFO_FILE, record)


def _is_staging_name(name: str) -> bool:
    return name.startswith(f".{CHECKPOINT_PREFIX}") and name.endswith(".tmp")


def _read_json_object(path: Path, *, missing: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return missing
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrainingError(f"{str(path)!r} is unreadable: {error}") from error
    if not isinstance(data, dict):
        raise TrainingError(f"{str(path)!r} should hold a JSON object, got {type(data).__name__}")
    return data
