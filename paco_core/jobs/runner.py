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
from pathlib import Path
from typing import Any

from paco_core.errors import ConfigError, InputError
from paco_core.jobs import store as st
from paco_core.jobs.store import Job, JobStateError, JobStore
from paco_core.run_folder import RunFolder, is_process_alive, process_start_time

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

    Returns:
        The job, queued or already claimed by its supervisor.

    Raises:
        ConfigError: the config does not validate (the message names the field).
    """
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
    _check_run_dir_free(store, run_dir)
    launch = {
        "num_processes": num_processes,
        "accelerate_config": accelerate_config,
        "cwd": str(cwd),
        "python": sys.executable,
        "env": recorded_env(os.environ if env is None else env),
    }
    job = store.create(
        name=name or job_id, config=resolved, run_dir=run_dir, launch=launch, job_id=job_id,
        device=device_slot(resolved["model"]["device"], num_processes if not accelerate_config else 2),
        gpu_policy=resolved.get("gpu_policy") or "exclusive",
    )  # fmt: skip
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


def _check_run_dir_free(store: JobStore, run_dir: Path) -> None:
    for other in store.list():
        if Path(other.run_dir) == run_dir and other.status != st.COMPLETED:
            raise InputError(
                f"run folder {str(run_dir)!r} belongs to job {other.id} ({other.status}); "
                f"resume that job (`paco jobs resume {other.id}`) or choose another output_dir"
            )


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
        busy = [row["device"] for row in connection.execute(
            "SELECT device FROM jobs WHERE status IN (?, ?)", st.ACTIVE_STATUSES
        )]  # fmt: skip
        rows = connection.execute(
            "SELECT * FROM jobs WHERE status = ? ORDER BY COALESCE(queue_rank, created_at), created_at, id",
            (st.QUEUED,),
        ).fetchall()
        for row in rows:
            job = Job.from_row(row)
            if not any(devices_conflict(job.device, device) for device in busy):
                st.update_job(
                    connection, store, job.id, expect=(st.QUEUED,), status=st.RUNNING,
                    started_at=time.time(), ended_at=None, supervisor_pid=None, supervisor_start=None,
                    pid=None, pid_start=None, exit_code=None, error=None, attempts=job.attempts + 1,
                )  # fmt: skip
                chosen.append(job)
            busy.append(job.device)  # a waiting job also holds its place in the line
    for job in chosen:
        try:
            pid = start_supervisor(store, job)
        except OSError as error:
            store.update(
                job.id, status=st.FAILED, ended_at=time.time(), error=f"cannot start the job: {error}"
            )  # fmt: skip
            continue
        store.update(
            job.id, expect=st.ACTIVE_STATUSES, supervisor_pid=pid, supervisor_start=process_start_time(pid)
        )  # fmt: skip
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
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            cwd=job.launch.get("cwd") or None, start_new_session=True, close_fds=True,
        )  # fmt: skip
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
    train = ["train", "--config", str(run_dir / CONFIG_FILE), "--set", f"output_dir={run_dir}"]
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
    """step / total / last and best checkpoint from the run folder, for the store."""
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
    if float(progress.get("updated_at") or 0) < (job.started_at or 0):
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
        return st.FAILED, log_tail(job.run_dir) or f"the trainer exited with code {exit_code}"
    how = (
        f"killed by signal {-exit_code}" if exit_code is not None and exit_code < 0 else "its process is gone"
    )
    if exit_code == 0:
        how = "it exited without writing a final state"
    return st.INTERRUPTED, (
        f"the trainer ended without a final state ({how}); resume with `paco jobs resume {job.id}`"
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
            if now - (job.started_at or now) < START_GRACE_S:
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
    changes: dict[str, Any] = {}
    if num_iterations is not None:
        if not isinstance(num_iterations, int) or num_iterations < 1:
            raise ConfigError(f"num_iterations should be a whole number >= 1, got {num_iterations!r}")
        changes["config"] = {**job.config, "num_iterations": num_iterations}
        changes["total"] = num_iterations
    if not store.update(
        job_id, expect=st.RESUMABLE_STATUSES, status=st.QUEUED, resume=True, exit_code=None,
        error=None, ended_at=None, pid=None, pid_start=None, **changes,
    ):  # fmt: skip
        raise JobStateError(f"job {job_id} changed while resuming; try again")
    if start:
        dispatch(store)
    return store.get(job_id)


def delete(store: JobStore, job_id: str, *, files: bool = False) -> Job:
    """Remove a job from the store (refused while it runs); ``files`` also deletes its run folder."""
    import shutil

    reconcile(store)
    job = store.get(job_id)
    if job.is_active:
        raise JobStateError(f"job {job_id} is {job.status}; cancel it first (`paco jobs cancel {job_id}`)")
    store.delete(job_id)
    if files and Path(job.run_dir).is_dir():
        shutil.rmtree(job.run_dir, ignore_errors=True)
    return job


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


def follow_log(store: JobStore, job_id: str, *, follow: bool = False, poll: float = 0.5) -> Iterator[str]:
    """The job's log text in chunks; with ``follow``, keeps yielding until the job has ended."""
    job = store.get(job_id)
    path = Path(job.run_dir) / LOG_FILE
    offset, last_pass = 0, False
    while True:
        chunk = b""
        if path.is_file():
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
        if chunk:
            yield chunk.decode("utf-8", errors="replace")
        if not follow:
            return
        if not chunk:
            if last_pass:
                return
            reconcile(store)
            last_pass = store.get(job_id).is_final  # read once more: the last lines may have just come
            if not last_pass:
                time.sleep(poll)
