"""The run folder: what a training run leaves in its output folder, read and written without torch.

The trainer writes through this module, and the job store, the status nodes and the
routes read through it; importing it loads neither torch nor numpy (standard library
only). Layout of ``<output_dir>/`` (see docs/runs.md)::

    config.json             the run's resolved config (written at start)
    progress.json           state, step, total, pid, last checkpoint (rewritten atomically)
    metrics.jsonl           one JSON object per line, each with its "step"
    samples/step-000010.png the evaluation sample grid of step 10
    checkpoint-<step>/      lora.safetensors, trainer_state.json, ... and manifest.json (last)
    tb/                     TensorBoard events (optional)
    run.lock                pid and start time of the trainer writing the folder
    best/                   lora.safetensors + best.json: the LoRA of the best evaluation so far
    control/pause-<holder>.json  a request to pause (GPU yield), one file per holder (see docs/gpu-sharing.md)

Example:
    >>> run = RunFolder("paco-grpo-run")                       # doctest: +SKIP
    >>> run.read_progress()["state"], run.metric_series("rewards/aggregated/mean")  # doctest: +SKIP
    >>> run.latest_checkpoint().lora_path                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paco_core.errors import InputError, TrainingError
from paco_core.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tb"
LOCK_FILE = "run.lock"
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
"""Inside a checkpoint: the trainer state; its presence marks a checkpoint of an older version complete."""
LORA_FILE = "lora.safetensors"
MANIFEST_FILE = "manifest.json"
"""Inside a checkpoint: size and sha256 of every other file, written last."""
MANIFEST_FORMAT = 1
KEPT_FILE = "kept.json"
"""Inside a checkpoint, written after its manifest: saved on request ("save now"), never pruned."""

PROGRESS_STATES = ("starting", "running", "paused", "finished", "stopped", "failed")
"""Values of ``progress.json``'s ``state``; finished, stopped and failed are final; paused
(yielding the GPU, see :meth:`RunFolder.request_pause`) is a live state like running."""
BEST_DIR = "best"
BEST_INFO_FILE = "best.json"
"""Inside ``best/``: metric, mode, value and step of the best evaluation (next to its LoRA)."""
CONTROL_DIR = "control"
OWNER_FILE = "job.json"
"""The job that owns the folder (``paco jobs``): only it reads its checkpoints, exports or deletes them."""
PAUSE_PREFIX = "pause-"
_HOLDER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_CHECKPOINT_NAME = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
_SAMPLE_NAME = re.compile(r"^step-(\d+)\.png$")
_HASH_CHUNK = 1 << 20


class CheckpointDamagedError(TrainingError):
    """A checkpoint's files do not match its manifest (truncated, corrupted or missing file)."""


class RunLockedError(TrainingError):
    """Another live process holds the run folder's lock."""


# --- processes: pid + start time, so a reused pid is not mistaken for the old process ----------


def process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Returns None when there is no such process, or where ``/proc`` does not exist. Two
    processes that had the same pid at different times have different start times.
    """
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def is_process_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Whether process ``pid`` runs and is the same process that had ``start_time``.

    A zombie (exited, not yet reaped) counts as dead. With ``start_time`` None only the
    pid is checked. Where ``/proc`` is missing (macOS, Windows) the start time cannot be
    read and only the pid's existence is checked.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if Path("/proc/self/stat").is_file():
        if _process_state(pid) in (None, "Z", "X"):
            return False
        return start_time is None or process_start_time(pid) == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoint-<step>`` folder."""

    step: int
    path: Path

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Checkpoint:
        """The checkpoint at ``path``; its step comes from the ``checkpoint-<step>`` name (-1 when
        the folder is named otherwise). Whether it is complete is not checked."""
        path = Path(path)
        match = _CHECKPOINT_NAME.match(path.name)
        return cls(int(match.group(1)) if match else -1, path)

    @property
    def lora_path(self) -> Path:
        """The LoRA file (EMA weights when EMA is on), loadable by PaCo LoRA and ComfyUI."""
        return self.path / LORA_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    def read_state(self) -> dict[str, Any]:
        """The trainer state JSON (step, config, data order ...).

        Raises:
            CheckpointDamagedError: missing or not valid JSON.
        """
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointDamagedError(
                f"checkpoint {str(self.path)!r}: {STATE_FILE} is unreadable ({error}); "
                "resume from another checkpoint"
            ) from error
        if not isinstance(data, dict):
            raise CheckpointDamagedError(f"checkpoint {str(self.path)!r}: {STATE_FILE} is not a JSON object")
        return data

    def verify(self) -> None:
        """Check every file against the manifest (see :func:`verify_manifest`).

        A checkpoint written before manifests existed (a state file, no manifest) cannot be
        verified: it passes with a warning.
        """
        if not self.has_manifest and self.state_path.is_file():
            logger.warning("%s was written before checkpoints had manifests: not verified", self.path)
            return
        verify_manifest(self.path)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``manifest.json`` with the size and sha256 of every other file in ``folder``
    (recursively, paths relative and with ``/``), atomically. Call it after the last file."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE and not path.name.endswith(".tmp"):
            files[path.relative_to(folder).as_posix()] = {
                "size": path.stat().st_size,
                "sha256": file_sha256(path),
            }
    return atomic_write_json(folder / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "files": files})


def verify_manifest(folder: str | os.PathLike) -> None:
    """Check that every file listed in ``folder``'s manifest exists with its size and sha256.

    Raises:
        CheckpointDamagedError: no manifest, an unreadable manifest, or a file that is
            missing, has another size (truncated) or another checksum (corrupted); the
            message names the file.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointDamagedError(
            f"checkpoint {str(folder)!r} has no {MANIFEST_FILE}: it is incomplete or was written "
            "before checkpoints had manifests"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        entries = [(name, int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # ValueError: bad JSON too
        raise CheckpointDamagedError(
            f"checkpoint {str(folder)!r}: {MANIFEST_FILE} is unreadable ({type(error).__name__}: {error})"
        ) from error
    for name, size, sha256 in entries:
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {MANIFEST_FILE} lists a path outside it: {name!r}"
            )
        if not path.is_file():
            raise CheckpointDamagedError(f"checkpoint {str(folder)!r}: {name} is missing")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {name} has {actual} bytes, the manifest says {size} (truncated?)"
            )
        if file_sha256(path) != sha256:
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {name} does not match its sha256 in the manifest (corrupted)"
            )


# --- the run lock ------------------------------------------------------------------------------


class RunLock:
    """``run.lock`` in a run folder: one trainer at a time.

    :meth:`acquire` creates the lock file exclusively with this process's pid and start
    time. A lock held by a live process (same pid and start time) is refused naming the
    pid; a lock left by a dead process (or by a new process that reused its pid) is
    taken over with a warning. Use as a context manager.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record (pid, start_time, host, since), or None when unlocked."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}  # half-written or damaged: nobody can be named
        return data if isinstance(data, dict) else {}

    def acquire(self) -> RunLock:
        """Take the lock.

        Raises:
            RunLockedError: a live process holds it.
            TrainingError: the folder cannot be written.
        """
        record = {
            "pid": os.getpid(),
            "start_time": process_start_time(os.getpid()),
            "host": socket.gethostname(),
            "since": time.time(),
        }
        text = json.dumps(record, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingError(
                f"cannot create the run folder {str(self.path.parent)!r} ({error.strerror or error}): "
                "choose a writable output_dir that is not a file"
            ) from error
        for _attempt in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            except OSError as error:
                raise TrainingError(
                    f"cannot write to the run folder {str(self.path.parent)!r} ({error.strerror or error}): "
                    "choose a writable output_dir"
                ) from error
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            self.held = True
            return self
        raise RunLockedError(f"could not take the lock {str(self.path)!r}: other processes keep taking it")

    def _take_over_if_stale(self) -> None:
        holder = self.holder()
        if holder is None:
            return  # released meanwhile: try again
        pid, start_time = holder.get("pid"), holder.get("start_time")
        if not holder:
            # a lock being written right now, or damaged: give a writer a moment
            age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0
            if age < 2:
                time.sleep(0.2)
                return
        elif holder.get("host", socket.gethostname()) != socket.gethostname():
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is locked by pid {pid} on host {holder.get('host')!r}; "
                f"wait for it to finish, or delete {str(self.path)!r} if that run is dead"
            )
        elif is_process_alive(pid, start_time):
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is in use by another trainer (pid {pid}); "
                "wait for it to finish or stop it, or train into another output_dir"
            )
        logger.warning(
            "taking over the stale lock %s left by pid %s, which is no longer running", self.path, pid
        )
        stale = self.path.with_name(f".{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.replace(self.path, stale)
        except FileNotFoundError:
            return  # another process took it over first
        # Between reading and renaming, another process may have taken the stale lock over and
        # written its own: if what was moved aside is not the stale record, put it back.
        try:
            moved = json.loads(stale.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = {}
        if holder and moved != holder:
            try:
                os.link(stale, self.path)
            except OSError:
                pass
        os.unlink(stale)

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        holder = self.holder()
        if holder and holder.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


# --- the folder ---------------------------------------------------------------------------------


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
        if _SAMPLE_NAME.match(child) or child.startswith(PAUSE_PREFIX) or _RUN_CONTROL_NAME.match(child):
            path.unlink()
        elif child == _REQUESTED_SAMPLES and path.is_dir():
            for grid in os.listdir(path):
                if _SAMPLE_NAME.match(grid):
                    (path / grid).unlink()
            if not os.listdir(path):
                path.rmdir()


class RunFolder:
    """A training run's output folder (need not exist yet). Every method is torch-free."""

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
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

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
            if entry in (CONFIG_FILE, PROGRESS_FILE, METRICS_FILE, SAMPLES_DIR, TENSORBOARD_DIR, BEST_DIR) or (
                _CHECKPOINT_NAME.match(entry) or _is_staging_name(entry)
            ):
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
        return atomic_write_json(self.path / OWNER_FILE, {"job_id": job_id, "store": store, "since": time.time()})

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

    # metrics
    def append_metrics(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        """Append one line ``{"step": step, **values}`` to ``metrics.jsonl``; returns it."""
        record = {"step": step, **values}
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
        return record

    def iter_metrics(self) -> Iterator[dict[str, Any]]:
        """Every metrics line in order. A line being written (no newline yet) or damaged is skipped."""
        try:
            handle = open(self.metrics_path, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                if not line.endswith("\n") or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    logger.debug("skipping a damaged line of %s", self.metrics_path)
                    continue
                if isinstance(record, dict) and isinstance(record.get("step"), int):
                    yield record

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metrics lines, oldest first ([] when there are none)."""
        return list(self.iter_metrics())

    def metric_series(self, name: str) -> list[tuple[int, Any]]:
        """``(step, value)`` of every line that holds metric ``name``, e.g. ``rewards/aggregated/mean``."""
        return [(record["step"], record[name]) for record in self.iter_metrics() if name in record]

    def metric_names(self) -> list[str]:
        """Every metric name seen in the file, sorted."""
        names: set[str] = set()
        for record in self.iter_metrics():
            names.update(record)
        names.discard("step")
        return sorted(names)

    def truncate_metrics_after(self, step: int) -> None:
        """Drop lines past ``step`` (left by a run that stopped after its last checkpoint), atomically."""
        if not self.metrics_path.is_file():
            return
        kept = [record for record in self.iter_metrics() if record["step"] <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

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
            match = _SAMPLE_NAME.match(entry)
            if match:
                found.append((int(match.group(1)), self.samples_dir / entry))
        return sorted(found)

    def latest_sample(self) -> Path | None:
        found = self.sample_paths()
        return found[-1][1] if found else None

    # checkpoints
    def checkpoint_path(self, step: int) -> Path:
        return self.path / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints (a manifest, or an older version's state file), oldest first.

        The step comes from the folder name, so a damaged state file does not hide or
        break the list; half-written staging folders are not listed.
        """
        if not self.path.is_dir():
            return []
        found = []
        for entry in os.listdir(self.path):
            match = _CHECKPOINT_NAME.match(entry)
            if not match:
                continue
            folder = self.path / entry
            if (folder / MANIFEST_FILE).is_file() or (folder / STATE_FILE).is_file():
                found.append(Checkpoint(int(match.group(1)), folder))
        return sorted(found, key=lambda checkpoint: checkpoint.step)

    def checkpoint(self, step: int) -> Checkpoint | None:
        """The complete checkpoint of ``step``, or None."""
        return next((c for c in self.checkpoints() if c.step == step), None)

    def latest_checkpoint(self) -> Checkpoint | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def lora_path(self, step: int | None = None) -> Path | None:
        """The LoRA file of checkpoint ``step`` (default: the newest), or None when there is none."""
        checkpoint = self.latest_checkpoint() if step is None else self.checkpoint(step)
        if checkpoint is None or not checkpoint.lora_path.is_file():
            return None
        return checkpoint.lora_path

    def latest_intact_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint that passes :meth:`Checkpoint.verify`, warning about each
        newer damaged one it passes over; None when no checkpoint is intact."""
        for checkpoint in reversed(self.checkpoints()):
            try:
                checkpoint.verify()
            except CheckpointDamagedError as error:
                logger.warning("skipping a damaged checkpoint: %s", error)
                continue
            return checkpoint
        return None

    def prune_checkpoints(self, keep: int, *, protect: Path | None = None) -> list[Path]:
        """Delete the oldest checkpoints beyond ``keep`` (0 keeps all); returns what was removed.

        Never raises: a checkpoint that cannot be deleted is skipped with a warning.
        ``protect`` (the one just written) is never deleted.
        """
        if keep <= 0:
            return []
        found = [c for c in self.checkpoints() if (protect is None or c.path != Path(protect))
                 and not (c.path / KEPT_FILE).is_file()]  # fmt: skip
        excess = max(0, len(found) + (1 if protect is not None else 0) - keep)
        removed = []
        for checkpoint in found[:excess]:
            try:
                shutil.rmtree(checkpoint.path)
            except OSError as error:
                logger.warning(
                    "could not delete the old checkpoint %s (%s); keeping it", checkpoint.path, error
                )
                continue
            removed.append(checkpoint.path)
        return removed

    def staging_path(self, step: int) -> Path:
        """The temporary folder a checkpoint is written into before it is renamed into place."""
        return self.path / f".{CHECKPOINT_PREFIX}{step}.tmp"

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

    # pausing: GPU yield requests (docs/gpu-sharing.md)
    @property
    def control_dir(self) -> Path:
        return self.path / CONTROL_DIR

    def pause_path(self, holder: str = "user") -> Path:
        """``control/pause-<holder>.json``: the pause request of one holder (comfyui, user, ...)."""
        if not isinstance(holder, str) or not _HOLDER_NAME.match(holder):
            raise InputError(
                f"pause holder {holder!r} should be 1-64 letters, digits, '_', '-' or '.', e.g. 'comfyui'"
            )
        return self.control_dir / f"{PAUSE_PREFIX}{holder}.json"

    def request_pause(self, reason: str = "", *, holder: str = "user", while_alive: bool = False) -> dict[str, Any]:
        """Ask the trainer of this folder to pause at its next step boundary and free the GPU.

        Each holder (``comfyui`` while it runs a prompt, ``user`` for a pause button) has its
        own request file, so one holder's release never ends another's pause; the trainer
        pauses while any request exists. Only a run with ``gpu_policy: yield`` honours it.
        Asking again refreshes the request (its time). Returns the request written.

        ``while_alive``: the request lapses when this process ends (pid and start time are
        recorded), so a ComfyUI that crashes mid-prompt never leaves a job paused for good.
        Without it (a CLI call that exits at once) the request stays until released.
        """
        record = {"holder": holder, "reason": str(reason), "pid": os.getpid(), "since": time.time()}
        if while_alive:
            record.update(while_alive=True, pid_start_time=process_start_time(os.getpid()))
        path = self.pause_path(holder)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, record)
        return record

    def release_pause(self, holder: str | None = "user") -> bool:
        """Withdraw ``holder``'s pause request (None: every holder's); returns whether one existed."""
        paths = [self.pause_path(holder)] if holder is not None else [p for p, _ in self._pause_files()]
        removed = False
        for path in paths:
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed

    def release_lapsed_pauses(self) -> list[str]:
        """Delete the ``while_alive`` requests whose process has ended; returns their holders."""
        lapsed = []
        for path, holder in self._pause_files():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if (
                isinstance(record, dict) and record.get("while_alive")
                and not is_process_alive(record.get("pid"), record.get("pid_start_time"))
            ):  # fmt: skip
                try:
                    path.unlink()
                    lapsed.append(holder)
                except FileNotFoundError:
                    pass
        return lapsed

    def pause_requests(self) -> list[dict[str, Any]]:
        """The pending pause requests (holder, reason, pid, since), oldest first; a
        ``while_alive`` request whose process has ended is not pending (its file is left)."""
        requests = []
        for path, holder in self._pause_files():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                record = {}  # being written or damaged: still a request
            if not isinstance(record, dict):
                record = {}
            if record.get("while_alive") and not is_process_alive(record.get("pid"), record.get("pid_start_time")):
                continue  # its requester is gone
            record.setdefault("holder", holder)
            if not isinstance(record.get("since"), (int, float)):
                try:
                    record["since"] = path.stat().st_mtime
                except OSError:
                    record["since"] = time.time()
            requests.append(record)
        return sorted(requests, key=lambda record: record["since"])

    def pause_requested(self) -> bool:
        """Whether any pause request is pending (cheap: a directory listing, and reading the
        request files only when there are some)."""
        return bool(self._pause_files()) and bool(self.pause_requests())

    def _pause_files(self) -> list[tuple[Path, str]]:
        try:
            names = os.listdir(self.control_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in sorted(names):
            if name.startswith(PAUSE_PREFIX) and name.endswith(".json"):
                found.append((self.control_dir / name, name[len(PAUSE_PREFIX) : -len(".json")]))
        return found


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
