"""Start, watch, stop and resume training jobs: the API the CLI, the nodes and the routes call.

A job runs as two detached processes (own session, so neither dies with the caller):

- the supervisor ``python -m paco_core.jobs.supervise <id> --home <home>``
  (:mod:`paco_core.jobs.supervise`), which claims the job's device in the store, starts
- the trainer ``python -m paco_core.cli train --config <run>/job-config.json --set
  output_dir=<run>`` (or ``python -m accelerate.commands.launch ... -m paco_core.cli train ...``
  when the job asks for several processes or names an accelerate config file), in its own
  process group, stdout and stderr appended to ``<run>/train.log``.

When the trainer ends, the supervisor records the exit code and the final status, then
hands the device over: :func:`dispatch` starts a supervisor for the oldest queued job on
that device. Any other process that reads the store (the CLI, ComfyUI, ``paco jobs
worker``) calls :func:`reconcile` first: a job whose supervisor and trainer are both gone
gets its final status from the run folder's progress file (``interrupted`` when the
trainer died without writing one), and queued jobs on a free device are dispatched.

Every function takes the :class:`~paco_core.jobs.store.JobStore` first; none imports
torch, numpy or ComfyUI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paco_core.errors import ConfigError, InputError
from paco_core.jobs import store as st
from paco_core.jobs.store import Job, JobStateError, JobStore
from paco_core.run_folder import RunFolder
from paco_core.run_folder.processes import is_process_alive, process_start_time
from paco_core.run_requests import PROMPT_REWARDS_FILE

LOG_FILE = "train.log"
CONFIG_FILE = "job-config.json"
ERROR_TAIL_CHARS = 2000

ENV_NAMES = re.compile(
    r"^(PYTHONPATH|PATH|VIRTUAL_ENV|CONDA_PREFIX|LD_LIBRARY_PATH|OMP_NUM_THREADS|MKL_NUM_THREADS|"
    r"TOKENIZERS_PARALLELISM|(CUDA|HF|HUGGINGFACE|TRANSFORMERS|DIFFUSERS|TORCH|PYTORCH|ACCELERATE|NCCL|PACO)_.*)$"
)
SECRET_NAMES = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
"""The submitter's variables a job records (never these) and replays when it starts, so the
job sees the submitter's PYTHONPATH and model settings even when another process starts it."""


# --- devices ------------------------------------------------------------------------------


def device_slot(device: str, num_processes: int = 1) -> str:
    """The queue a job waits in: ``cpu``, ``cuda:N``, or ``cuda:*`` (several GPUs).

    ``auto`` and ``cuda`` mean the first GPU (the trainer takes ``cuda`` when there is
    one). Decided without torch.
    """
    device = (device or "auto").strip()
    if num_processes > 1 and device != "cpu":
        return "cuda:*"
    if device == "cpu":
        return "cpu"
    if device in ("auto", "cuda"):
        return "cuda:0"
    return device


def devices_conflict(a: str, b: str) -> bool:
    if a == b:
        return True
    return "cuda:*" in (a, b) and a.startswith("cuda") and b.startswith("cuda")


# --- submit ----------------------------------------------------------------------------------


def validate_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved training config as a plain dict, validated (file checks included).

    Raises:
        ConfigError: naming the field that is wrong.
    """
    from paco_core.config import config_from_dict, config_to_dict
    from paco_core.rl.config import TrainConfig

    config = config_from_dict(TrainConfig, dict(data))
    config.check_ready()
    return config_to_dict(config)


def submit(
    store: JobStore,
    config: Mapping[str, Any],
    *,
    name: str | None = None,
    run_dir: str | os.PathLike | None = None,
    num_processes: int = 1,
    accelerate_config: str | os.PathLike | None = None,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    start: bool = True,
    reuse: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    name_field: str = "name",
) -> Job:
    """Validate a training config, queue it as a job and start it when its device is free.

    Args:
        config: the training config as a dict (a preset merged with overrides, or a file's
            JSON). Relative paths in it are relative to ``cwd``.
        name: a label (default: the job id).
        run_dir: the run folder; default ``config["output_dir"]`` when the config names
            one, else ``<home>/runs/<job id>``.
        num_processes: >1 runs the trainer under ``accelerate launch --num_processes N``.
        accelerate_config: an accelerate config file (FSDP, several machines);
            implies ``accelerate launch``.
        cwd: the trainer's working folder (default: this process's).
        env: the environment to record (default: ``os.environ``; see :data:`ENV_NAMES`).
        start: dispatch at once (False leaves it queued for the next dispatch).
        reuse: return the newest job with the same name and the same config (the run
            folder aside) instead of queueing a duplicate (a graph run twice).
        resume: the run folder holds an earlier run (of another job, or of ``paco train``):
            continue it from its latest checkpoint; this job then owns the folder.
        overwrite: the run folder holds an earlier run: delete that run's files now (the
            folder's other files stay) and start afresh.
        name_field: how the caller calls the name, for messages (``lora_name``, ``--name``).

    Returns:
        The job, queued or already claimed by its supervisor.

    Raises:
        ConfigError: the config does not validate (the message names the field).
        InputError: a bad name, or the run folder holds another run (or a queued or
            running job) and neither ``resume`` nor ``overwrite`` was asked.
    """
    if name is not None:
        st.check_job_name(name, field=name_field)
    if resume and overwrite:
        raise InputError("resume and overwrite contradict each other: give one of them")
    if not isinstance(num_processes, int) or isinstance(num_processes, bool) or num_processes < 1:
        raise InputError(f"num_processes should be a whole number >= 1, got {num_processes!r}")
    cwd = Path(cwd or os.getcwd()).resolve()
    if accelerate_config is not None:
        accelerate_config = _absolute(accelerate_config, cwd)
        if not Path(accelerate_config).is_file():
            raise InputError(f"accelerate config file {accelerate_config!r} does not exist")
    raw = dict(config)
    job_id = st.new_job_id()
    while store.find(job_id) is not None:
        job_id = st.new_job_id()
    if run_dir is None:
        run_dir = _absolute(raw["output_dir"], cwd) if raw.get("output_dir") else store.runs_dir / job_id
    run_dir = Path(_absolute(run_dir, cwd))
    raw["output_dir"] = str(run_dir)
    with _working_dir(cwd):
        resolved = validate_config(raw)
    if reuse:
        same = find_same_job(store, resolved, name=name)
        if same is not None:
            return same
    earlier = _check_run_dir_free(store, run_dir, resume=resume, overwrite=overwrite)
    launch = {
        "num_processes": num_processes,
        "accelerate_config": accelerate_config,
        "cwd": str(cwd),
        "python": sys.executable,
        "env": recorded_env(os.environ if env is None else env),
    }
    job = store.create(
        name=name or job_id,
        config=resolved,
        run_dir=run_dir,
        launch=launch,
        job_id=job_id,
        device=device_slot(resolved["model"]["device"], num_processes if not accelerate_config else 2),
        gpu_policy=resolved.get("gpu_policy") or "exclusive",
    )
    try:
        _take_run_dir(store, job, earlier, overwrite=overwrite)
    except BaseException:
        store.delete(job.id)
        raise
    if resume:
        store.update(job.id, resume=True)
    if start:
        dispatch(store)
    return store.get(job.id)


def find_same_job(store: JobStore, config: Mapping[str, Any], *, name: str | None = None) -> Job | None:
    """The newest job with this resolved config (``output_dir`` aside) and name, or None."""
    wanted = _without_output_dir(config)
    for job in reversed(store.list()):
        if (name is None or job.name == name) and _without_output_dir(job.config) == wanted:
            return job
    return None


def _without_output_dir(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in ("output_dir", "paco_version")}


def recorded_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if ENV_NAMES.match(k) and not SECRET_NAMES.search(k)}


def _absolute(path: str | os.PathLike, cwd: Path) -> str:
    path = Path(os.path.expanduser(str(path)))
    return str(path if path.is_absolute() else (cwd / path).resolve())


class _working_dir:
    def __init__(self, path: Path):
        self.path, self.previous = path, None

    def __enter__(self):
        self.previous = os.getcwd()
        if Path(self.previous).resolve() != self.path:  # never chdir a threaded host without need
            os.chdir(self.path)

    def __exit__(self, *exc):
        if os.getcwd() != self.previous:
            os.chdir(self.previous)


def _check_run_dir_free(store: JobStore, run_dir: Path, *, resume: bool, overwrite: bool) -> list[Job]:
    """Refuse a run folder that a queued or running job uses, or that holds an earlier run
    (finished or not) unless ``resume`` or ``overwrite`` says what to do with it.

    Returns:
        The jobs of the store whose run folder this is (they lose it to the new job).
    """
    same = [other for other in store.list() if _same_path(other.run_dir, run_dir)]
    for other in same:
        if other.status in (st.QUEUED, *st.ACTIVE_STATUSES):
            raise InputError(
                f"run folder {str(run_dir)!r} belongs to job {other.id} ({other.status}); wait for it "
                f"to end or cancel it (`paco jobs cancel {other.id}`), or choose another output_dir"
            )
    folder = RunFolder(run_dir)
    if folder.path.exists() and not folder.path.is_dir():
        raise InputError(f"run folder {str(run_dir)!r} is a file, not a folder: choose another output_dir")
    results = folder.result_entries()
    owner = folder.read_owner()
    holder = next((o.id for o in same if o.id == owner), None) or (same[-1].id if same else None)
    if not (results or holder):
        return same
    what = f"job {holder}'s run" if holder else "an earlier run"
    if resume:
        if not has_checkpoint(run_dir):
            raise InputError(
                f"run folder {str(run_dir)!r} holds {what} but no checkpoint to resume from: "
                "overwrite it or choose another output_dir"
            )
        return same
    if overwrite:
        return same
    hint = (
        f"continue that job (`paco jobs resume {holder}`), "
        if holder and any(o.id == holder and o.status in st.RESUMABLE_STATUSES for o in same)
        else ""
    )
    listed = ", ".join(results[:4]) + (", ..." if len(results) > 4 else "")
    raise InputError(
        f"run folder {str(run_dir)!r} holds {what}{f' ({listed})' if listed else ''}: {hint}"
        "resume it as a new job (--resume), overwrite it (--overwrite deletes that run's files), "
        "or choose another output_dir"
    )


def _take_run_dir(store: JobStore, job: Job, earlier: list[Job], *, overwrite: bool) -> None:
    """Make ``job`` the owner of its run folder (``job.json``); with ``overwrite`` first delete
    the earlier run's files. Earlier jobs of the folder keep their records but no longer own
    its files: they can no longer be resumed, exported further or delete them."""
    folder = RunFolder(job.run_dir)
    if overwrite:
        removed = remove_run_files(job.run_dir)
        for other in earlier:  # their checkpoints are gone: their records must not point at ours later
            store.update(other.id, last_checkpoint=None, best_checkpoint=None)
        if removed:
            import logging

            logging.getLogger(__name__).warning(
                "overwrite: deleted the earlier run in %s (%s)", job.run_dir, ", ".join(removed)
            )
    try:
        folder.write_owner(job.id, store=str(store.path))
    except OSError as error:
        raise InputError(
            f"cannot write into the run folder {job.run_dir!r} ({error.strerror or error}): "
            "choose a writable output_dir"
        ) from error


def _same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def owns_run_dir(job: Job) -> bool:
    """Whether the job's run folder is still its own: ``job.json`` names it (or, for a folder of
    a job from before ``job.json`` existed, names nobody)."""
    owner = RunFolder(job.run_dir).read_owner()
    return owner is None or owner == job.id


RUN_FILES = (LOG_FILE, CONFIG_FILE, PROMPT_REWARDS_FILE)
"""What the runner writes into a run folder besides the trainer's files (:meth:`RunFolder.used_entries`)."""


def remove_run_files(run_dir: str | os.PathLike) -> list[str]:
    """Delete what a job and its trainer wrote into ``run_dir``, nothing else; the folder itself
    only when nothing else is left in it. Returns the names removed.

    Raises:
        InputError: a file could not be deleted (named, with the reason).
    """
    folder = RunFolder(run_dir)
    removed = folder.remove_run_entries(extra=RUN_FILES)
    try:
        folder.path.rmdir()  # only when empty: a user's own files keep their folder
    except OSError:
        pass
    return removed


# --- dispatch: one running job per device ------------------------------------------------------

START_GRACE_S = 30.0
"""A job claimed by :func:`dispatch` whose supervisor has not recorded itself after this
long (the dispatching process died in between) goes back to the queue."""


def dispatch(store: JobStore) -> list[str]:
    """Reconcile, then start the oldest queued job of every free device.

    The device is claimed in the store (status ``running``) inside one ``BEGIN
    IMMEDIATE`` transaction, then the job's supervisor is started; two processes
    dispatching at once cannot start two jobs on one device. Queued jobs keep their
    order per device: a job never overtakes an older one that waits for the same device.

    Returns:
        The ids of the jobs started.
    """
    reconcile(store)
    chosen: list[Job] = []
    with store.transaction() as connection:
        busy = [
            row["device"]
            for row in connection.execute(
                "SELECT device FROM jobs WHERE status IN (?, ?)", st.ACTIVE_STATUSES
            )
        ]
        rows = connection.execute(
            "SELECT * FROM jobs WHERE status = ? ORDER BY COALESCE(queue_rank, created_at), created_at, id",
            (st.QUEUED,),
        ).fetchall()
        for row in rows:
            job = Job.from_row(row)
            if not any(devices_conflict(job.device, device) for device in busy):
                st.update_job(
                    connection,
                    store,
                    job.id,
                    expect=(st.QUEUED,),
                    status=st.RUNNING,
                    started_at=time.time(),
                    ended_at=None,
                    supervisor_pid=None,
                    supervisor_start=None,
                    pid=None,
                    pid_start=None,
                    exit_code=None,
                    error=None,
                    attempts=job.attempts + 1,
                )
                chosen.append(job)
            busy.append(job.device)  # a waiting job also holds its place in the line
    for job in chosen:
        try:
            pid = start_supervisor(store, job)
        except OSError as error:
            store.update(
                job.id, status=st.FAILED, ended_at=time.time(), error=f"cannot start the job: {error}"
            )
            continue
        store.update(
            job.id, expect=st.ACTIVE_STATUSES, supervisor_pid=pid, supervisor_start=process_start_time(pid)
        )
    return [job.id for job in chosen]


def start_supervisor(store: JobStore, job: Job) -> int:
    """Start ``python -m paco_core.jobs.supervise <id>`` detached; returns its pid."""
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **job.launch.get("env", {})}
    env["PYTHONPATH"] = _with_package_root(env.get("PYTHONPATH", ""))
    with open(run_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [job_python(job), "-m", "paco_core.jobs.supervise", job.id, "--home", str(store.home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=job.launch.get("cwd") or None,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def job_python(job: Job) -> str:
    """The submitter's Python when it still exists, else this one."""
    python = job.launch.get("python")
    return python if python and os.path.isfile(python) else sys.executable


def _with_package_root(pythonpath: str) -> str:
    """PYTHONPATH with the folder holding this ``paco_core`` first, so the job runs this copy."""
    root = str(Path(__file__).resolve().parents[2])
    parts = [p for p in pythonpath.split(os.pathsep) if p]
    return os.pathsep.join([root, *[p for p in parts if p != root]])


# --- the trainer's command line -----------------------------------------------------------------


def trainer_command(job: Job) -> list[str]:
    """The command that runs the job's trainer (``--resume latest`` when resuming from a checkpoint)."""
    python = job_python(job)
    run_dir = Path(job.run_dir)
    train = [
        "train",
        "--log-file-mode",
        "--config",
        str(run_dir / CONFIG_FILE),
        "--set",
        f"output_dir={run_dir}",
    ]
    if job.resume and has_checkpoint(run_dir):
        train += ["--resume", "latest"]
    processes = int(job.launch.get("num_processes") or 1)
    accelerate_config = job.launch.get("accelerate_config")
    if processes <= 1 and not accelerate_config:
        return [python, "-m", "paco_core.cli", *train]
    launch = [python, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        launch += ["--config_file", str(accelerate_config)]
    if processes > 1:
        launch += ["--num_processes", str(processes)]
    return [*launch, "-m", "paco_core.cli", *train]


def write_job_config(job: Job) -> Path:
    """The job's resolved config as ``<run>/job-config.json`` (what the trainer reads)."""
    from paco_core.io import atomic_write_json

    return atomic_write_json(Path(job.run_dir) / CONFIG_FILE, job.config)


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return RunFolder(run_dir).latest_checkpoint() is not None


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """``pid`` is alive and is the process that started at ``start_time`` (pid reuse cannot fool it)."""
    return pid is not None and is_process_alive(pid, start_time)


def signal_group(pid: int | None, start_time: int | None, signum: int = signal.SIGTERM) -> bool:
    """Send ``signum`` to the process group led by ``pid`` if it is still that process; True if sent."""
    if not process_alive(pid, start_time):
        return False
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signum)
    return True


# --- reconcile ----------------------------------------------------------------------------------


def progress_fields(job: Job) -> dict[str, Any]:
    """step / total / last and best checkpoint from the run folder, for the store ({} when the
    folder now belongs to another job: a record never points at another job's files)."""
    if not owns_run_dir(job):
        return {}
    folder = RunFolder(job.run_dir)
    progress = folder.read_progress()
    fields: dict[str, Any] = {}
    if isinstance(progress.get("step"), int):
        fields["step"] = progress["step"]
    if isinstance(progress.get("total"), int) and progress["total"] > 0:
        fields["total"] = progress["total"]
    latest = folder.latest_checkpoint()
    if latest is not None:
        fields["last_checkpoint"] = str(latest.path)
        # a checkpoint of step N means N steps are done, even if progress.json lags behind
        fields["step"] = max(fields.get("step", 0), latest.step)
    if progress.get("best_checkpoint"):
        fields["best_checkpoint"] = str(progress["best_checkpoint"])
    return fields


def final_status(job: Job, exit_code: int | None) -> tuple[str, str | None]:
    """(status, error) of a job whose trainer is gone, from its progress file and exit code.

    ``exit_code`` is the trainer's return code (negative: killed by that signal), or None
    when nobody saw it end (the supervisor died too).
    """
    progress = RunFolder(job.run_dir).read_progress()
    state = progress.get("state")
    if not written_by_this_attempt(job, progress):
        state = None  # left by an earlier attempt: this attempt never wrote one
    if state == "finished":
        return st.COMPLETED, None
    if state == "stopped":
        return st.STOPPED, None
    if state == "failed":
        return st.FAILED, progress.get("message") or log_tail(job.run_dir)
    if job.status == st.STOPPING:
        early = not has_checkpoint(job.run_dir)
        return st.STOPPED, "stopped before the trainer saved a checkpoint" if early else None
    if exit_code is not None and exit_code > 0:
        failed = log_tail(job.run_dir) or f"the trainer exited with code {exit_code}"
        return st.FAILED, disk_full_note(job.run_dir) + failed
    how = (
        f"killed by signal {-exit_code}" if exit_code is not None and exit_code < 0 else "its process is gone"
    )
    if exit_code == 0:
        how = "it exited without writing a final state"
    return st.INTERRUPTED, (
        f"the trainer ended without a final state ({how}); resume with `paco jobs resume {job.id}`"
    )


def written_by_this_attempt(job: Job, progress: Mapping[str, Any]) -> bool:
    """Whether ``progress`` was written by the job's current trainer, not left by an earlier attempt.

    A writer that started after the trainer (process start times count clock ticks since
    boot, which the wall clock stepping back does not change) is this attempt's; without
    those, a record not older than the attempt's start (wall clock) is.
    """
    writer_start, trainer_start = progress.get("pid_start_time"), job.pid_start
    if isinstance(writer_start, int) and isinstance(trainer_start, int) and writer_start >= trainer_start:
        return True
    return float(progress.get("updated_at") or 0) >= (job.started_at or 0)


DISK_FULL_BYTES = 16 << 20


def disk_full_note(run_dir: str | os.PathLike) -> str:
    """``"the disk ... is full ... "`` when the run folder's disk has almost no space left, else ``""``."""
    import shutil

    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        return ""
    if free >= DISK_FULL_BYTES:
        return ""
    return (
        f"the disk holding {str(run_dir)!r} is full ({free >> 10} KiB free): free some space, then resume "
        "the job. "
    )


def log_tail(run_dir: str | os.PathLike, limit: int = ERROR_TAIL_CHARS) -> str:
    path = Path(run_dir) / LOG_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def reconcile(store: JobStore) -> list[Job]:
    """Bring running/stopping jobs up to date; finish those whose processes are gone.

    A job stays active while its supervisor or its trainer is alive (pid and start time
    both match); otherwise its final status comes from the progress file (``interrupted``
    when the trainer died mid-run). Step, total and checkpoints are refreshed from the
    run folder.

    Returns:
        The active jobs after reconciling.
    """
    still_active = []
    now = time.time()
    for job in store.list(statuses=st.ACTIVE_STATUSES):
        if job.supervisor_pid is None and job.pid is None:
            if 0 <= now - (job.started_at or now) < START_GRACE_S:  # (a clock stepped back: not a start)
                still_active.append(job)  # its supervisor is being started
            elif job.status == st.STOPPING:
                store.update(job.id, expect=(st.STOPPING,), status=st.STOPPED, ended_at=now)
            else:  # the dispatching process died before starting it
                store.update(job.id, expect=(st.RUNNING,), status=st.QUEUED, started_at=None)
            continue
        alive = process_alive(job.supervisor_pid, job.supervisor_start) or process_alive(
            job.pid, job.pid_start
        )
        fields = progress_fields(job)
        if alive:
            changed = {key: value for key, value in fields.items() if getattr(job, key) != value}
            if changed:
                store.update(job.id, expect=st.ACTIVE_STATUSES, **changed)
            still_active.append(job)
            continue
        status, error = final_status(job, job.exit_code)
        store.update(job.id, expect=(job.status,), status=status, error=error, ended_at=now, **fields)
    return still_active


# --- control ---------------------------------------------------------------------------------------


def cancel(store: JobStore, job_id: str) -> Job:
    """Stop a job: a queued one at once (stopped); a running one by SIGTERM to the trainer's
    process group (it finishes its step, saves a checkpoint, and ends stopped).

    Raises:
        JobNotFoundError / JobStateError: unknown id, or the job has already ended.
    """
    job = store.get(job_id)
    if job.status == st.QUEUED:
        if store.update(job_id, expect=(st.QUEUED,), status=st.STOPPED, ended_at=time.time()):
            return store.get(job_id)
        job = store.get(job_id)
    if job.status in st.FINAL_STATUSES:
        raise JobStateError(f"job {job_id} has already ended ({job.status}); nothing to cancel")
    store.update(job_id, expect=st.ACTIVE_STATUSES, status=st.STOPPING)
    job = store.get(job_id)
    if job.pid:
        signal_group(job.pid, job.pid_start)
    return job


def resume(store: JobStore, job_id: str, *, num_iterations: int | None = None, start: bool = True) -> Job:
    """Queue a stopped, failed or interrupted job again; it continues from its last checkpoint.

    Args:
        num_iterations: a new total (e.g. to train further after completion is not
            allowed; use a higher total to extend a stopped run).

    Raises:
        JobStateError: the job is queued, running or completed.
    """
    reconcile(store)
    job = store.get(job_id)
    if job.status not in st.RESUMABLE_STATUSES:
        raise JobStateError(
            f"job {job_id} is {job.status}; only {', '.join(st.RESUMABLE_STATUSES)} jobs can be resumed"
        )
    owner = RunFolder(job.run_dir).read_owner()
    if not owns_run_dir(job):
        raise JobStateError(
            f"job {job_id}'s run folder {job.run_dir!r} now belongs to job {owner}: resume that job, "
            "or submit a new run"
        )
    changes: dict[str, Any] = {}
    if num_iterations is not None:
        from paco_core.config import MAX_WHOLE_NUMBER

        if not isinstance(num_iterations, int) or not 1 <= num_iterations <= MAX_WHOLE_NUMBER:
            raise ConfigError(
                f"num_iterations should be a whole number from 1 to {MAX_WHOLE_NUMBER}, got {num_iterations!r}"
            )
        changes["config"] = {**job.config, "num_iterations": num_iterations}
        changes["total"] = num_iterations
    if not store.update(
        job_id,
        expect=st.RESUMABLE_STATUSES,
        status=st.QUEUED,
        resume=True,
        exit_code=None,
        error=None,
        ended_at=None,
        pid=None,
        pid_start=None,
        **changes,
    ):
        raise JobStateError(f"job {job_id} changed while resuming; try again")
    if start:
        dispatch(store)
    return store.get(job_id)


@dataclass
class DeletedJob:
    """What :func:`delete` did: the job's last record, the run files removed, and why files were kept."""

    job: Job
    removed_files: list[str] = field(default_factory=list)
    kept_because: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            **self.job.to_record(),
            "removed_files": self.removed_files,
            "kept_because": self.kept_because,
        }


def delete(store: JobStore, job_id: str, *, files: bool = False) -> DeletedJob:
    """Remove a job from the store (refused while it runs).

    ``files`` also deletes what the job wrote into its run folder (checkpoints, samples,
    metrics, its log ...), never anything else: a user's own files there stay, and so does
    the folder when they do. A run folder that now belongs to another job (which resumed or
    overwrote it) is left alone, and says so in ``kept_because``.
    """
    reconcile(store)
    job = store.get(job_id)
    if job.is_active:
        raise JobStateError(f"job {job_id} is {job.status}; cancel it first (`paco jobs cancel {job_id}`)")
    kept_because = _files_kept_because(store, job) if files else None
    store.delete(job_id)
    removed = remove_run_files(job.run_dir) if files and kept_because is None else []
    return DeletedJob(job, removed, kept_because)


def _files_kept_because(store: JobStore, job: Job) -> str | None:
    """Why ``delete --files`` must keep the job's run folder (None: it may delete the job's files)."""
    owner = RunFolder(job.run_dir).read_owner()
    if owner is not None and owner != job.id:
        return f"the run folder now belongs to job {owner}"
    others = [o.id for o in store.list() if o.id != job.id and _same_path(o.run_dir, job.run_dir)]
    if owner is None and others:  # a folder of jobs from before job.json: whose files are whose is unknown
        return f"jobs {', '.join(others)} use the same run folder"
    return None


def wait(store: JobStore, job_id: str, *, timeout: float | None = None, poll: float = 0.5) -> Job:
    """Block until the job has a final status (or ``timeout`` seconds pass); returns the job."""
    store.get(job_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        dispatch(store)  # reconciles, and starts a queued job whose supervisor died
        job = store.get(job_id)
        if job.is_final:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            return job
        time.sleep(poll)


LOG_CHUNK_BYTES = 1 << 20
"""How much of a log is read at once: reading a huge log never holds more than this."""


def log_path(job: Job) -> Path | None:
    """The job's ``train.log`` when it is a regular file inside the run folder, else None.

    Raises:
        InputError: ``train.log`` is a link (or leads) out of the run folder; it is never read.
    """
    path = Path(job.run_dir) / LOG_FILE
    if not path.is_file():  # missing, a folder, a FIFO (which would block a reader forever)
        return None
    if Path(job.run_dir).resolve() not in path.resolve().parents:
        raise InputError(
            f"job {job.id}'s {LOG_FILE} leads out of its run folder ({path} is a link): not read"
        )
    return path


def read_log_tail(
    job: Job, lines: int, *, max_bytes: int = LOG_CHUNK_BYTES, max_line_chars: int = 2000
) -> list[str]:
    """The last ``lines`` lines of the job's log, reading at most its last ``max_bytes`` bytes;
    a longer line keeps its last ``max_line_chars`` characters after ``…``."""
    path = log_path(job)
    if path is None:
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        text = handle.read(max_bytes).decode("utf-8", errors="replace")
    found = text.splitlines()[-lines:] if lines > 0 else []
    return [line if len(line) <= max_line_chars else "…" + line[-max_line_chars:] for line in found]


def follow_log(
    store: JobStore, job_id: str, *, follow: bool = False, poll: float = 0.5, tail_bytes: int | None = None
) -> Iterator[str]:
    """The job's log text in chunks of at most :data:`LOG_CHUNK_BYTES`; with ``follow``, keeps
    yielding until the job has ended. ``tail_bytes``: start that many bytes before the end."""
    import codecs

    job = store.get(job_id)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset, last_pass, first = 0, False, True
    while True:
        chunk = b""
        path = log_path(job)
        if path is not None:
            with open(path, "rb") as handle:
                if first and tail_bytes is not None:
                    handle.seek(0, os.SEEK_END)
                    offset = max(0, handle.tell() - tail_bytes)
                handle.seek(offset)
                chunk = handle.read(LOG_CHUNK_BYTES)
                offset = handle.tell()
            first = False
        if chunk:
            yield decoder.decode(chunk)
            if len(chunk) == LOG_CHUNK_BYTES:
                continue  # more to read now
        if not follow:
            return
        if not chunk:
            if last_pass:
                return
            reconcile(store)
            last_pass = store.get(job_id).is_final  # read once more: the last lines may have just come
            if not last_pass:
                time.sleep(poll)
