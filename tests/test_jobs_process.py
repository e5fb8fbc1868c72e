"""Jobs end to end: real `paco jobs` commands, real detached `paco train` processes, real SQLite.

The callers here are short-lived `paco jobs` subprocesses; after they return, the test only
reads the store (no reconcile, no dispatch), so whatever happens next (recording a crash,
starting the queued job) is done by the jobs' own supervisors, with no caller alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import kill_job_processes, offline_env, tiny_flux_run
from safetensors.torch import load_file

from paco_core.jobs.store import JobStore
from paco_core.run_folder import RunFolder, is_process_alive

pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def _env(tmp_path: Path, *, hold: bool = True) -> dict[str, str]:
    env = offline_env(tmp_path, FIXTURES / "jobs")  # job_rewards is importable only so: the job inherits it
    env.pop("PACO_TEST_HOLD_FILE", None)
    if hold:
        env["PACO_TEST_HOLD_FILE"] = str(tmp_path / "hold")
    return env


def _config(model: Path, **extra) -> dict:
    return tiny_flux_run(model, reward="job_rewards:held_brightness", **extra)


def _paco(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "jobs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _submit(env: dict, home: Path, config: dict, run_dir: Path, name: str) -> str:
    config_path = run_dir.parent / f"{name}.json"
    config_path.write_text(json.dumps(config))
    started = time.monotonic()
    result = _paco(
        env,
        "submit",
        "--config",
        str(config_path),
        "--home",
        str(home),
        "--name",
        name,
        "--run-dir",
        str(run_dir),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.monotonic() - started < 20, "submit must return at once"
    return result.stdout.strip()


def _until(store: JobStore, job_id: str, predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)  # a plain read: no reconcile, no dispatch
        if predicate(job):
            return job
        time.sleep(0.05)
    log = (Path(job.run_dir) / "train.log").read_text(errors="replace")[-3000:] if job.run_dir else ""
    raise AssertionError(f"{job_id} never became {what}; it is {job.status}\n{log}")


@pytest.fixture
def jobs_home(tmp_path):
    home = tmp_path / "home"
    yield home
    if not home.exists():
        return
    kill_job_processes(JobStore(home))  # never leave a trainer behind


def _train_in_this_process(config: dict, run_dir: Path, monkeypatch) -> Path:
    """The uninterrupted reference run, in-process (torch is loaded here already)."""
    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.trainer import GrpoTrainer

    monkeypatch.syspath_prepend(str(FIXTURES / "jobs"))
    monkeypatch.delenv("PACO_TEST_HOLD_FILE", raising=False)
    result = GrpoTrainer(config_from_dict(TrainConfig, {**config, "output_dir": str(run_dir)})).train()
    return result.last_checkpoint / "lora.safetensors"


def test_kill_9_interrupts_a_job_that_resumes_to_the_lora_of_an_uninterrupted_run(
    tiny_models, tmp_path, jobs_home, monkeypatch
):
    env = _env(tmp_path)
    (tmp_path / "hold").touch()  # holds the trainer in its step 2 until deleted
    config = _config(tiny_models["flux"], num_iterations=3, checkpoint_every=1)
    killed = _submit(env, jobs_home, config, tmp_path / "killed", "killed")
    straight_lora = load_file(_train_in_this_process(config, tmp_path / "straight", monkeypatch))
    store = JobStore(jobs_home)

    job = _until(
        store, killed, lambda j: j.pid and RunFolder(j.run_dir).latest_checkpoint(), 120, "checkpointed"
    )
    os.kill(job.pid, signal.SIGKILL)
    (tmp_path / "hold").unlink()
    job = _until(store, killed, lambda j: j.is_final, 60, "final")
    assert job.status == "interrupted" and job.exit_code == -9
    assert "killed by signal 9" in job.error and job.step == 1

    result = _paco(env, "resume", killed, "--home", str(jobs_home))
    assert result.returncode == 0 and result.stdout.strip() == f"{killed}: running"
    job = _until(store, killed, lambda j: j.is_final, 240, "final")
    assert job.status == "completed", job.error
    assert job.attempts == 2 and job.exit_code == 0 and job.step == job.total == 3

    resumed_lora = load_file(job.lora)
    assert job.lora.endswith("checkpoint-3/lora.safetensors")
    assert resumed_lora.keys() == straight_lora.keys()
    assert all(torch.equal(resumed_lora[k], straight_lora[k]) for k in resumed_lora), (
        "the resumed LoRA differs from the uninterrupted one"
    )
    assert [m["step"] for m in RunFolder(job.run_dir).read_metrics()] == [1, 2, 3]
    assert "--resume latest" in (Path(job.run_dir) / "train.log").read_text()

    shown = json.loads(_paco(env, "show", killed, "--json", "--home", str(jobs_home)).stdout)
    assert shown["status"] == "completed" and shown["lora"] == job.lora and shown["best_lora"] == job.lora


def test_a_queued_job_starts_when_the_first_completes_and_cancel_stops_it_with_a_checkpoint(
    tiny_models, tmp_path, jobs_home
):
    first = _submit(
        _env(tmp_path, hold=False),
        jobs_home,
        _config(tiny_models["flux"], num_iterations=2),
        tmp_path / "first",
        "first",
    )
    env = _env(tmp_path)
    (tmp_path / "hold").touch()
    long = _submit(
        env,
        jobs_home,
        _config(tiny_models["flux"], num_iterations=200, checkpoint_every=1000),
        tmp_path / "long",
        "long",
    )
    store = JobStore(jobs_home)
    assert store.get(long).status == "queued"  # one job per device: it waits

    done = _until(store, first, lambda j: j.is_final, 120, "final")
    assert done.status == "completed" and done.step == 2
    job = _until(store, long, lambda j: j.step >= 1, 120, "past step 1")  # started by first's supervisor
    assert job.started_at >= done.ended_at - 1.0

    result = _paco(env, "cancel", long, "--home", str(jobs_home))
    assert result.returncode == 0 and result.stdout.strip() == f"{long}: stopping"
    (tmp_path / "hold").unlink()  # the step in progress (2) finishes, then the trainer stops
    job = _until(store, long, lambda j: j.is_final, 90, "final")
    assert job.status == "stopped" and job.exit_code == 143 and job.error is None and job.step == 2
    assert job.last_checkpoint.endswith("checkpoint-2") and Path(job.lora).is_file()

    assert _paco(env, "wait", long, "--home", str(jobs_home)).returncode == 4
    assert _paco(env, "wait", first, "--home", str(jobs_home)).returncode == 0
    logs = _paco(env, "logs", long, "--home", str(jobs_home)).stdout
    assert "stopped at step 2" in logs and "status stopped" in logs

    resumed = _paco(env, "resume", long, "--iterations", "3", "--home", str(jobs_home))
    assert resumed.returncode == 0, resumed.stderr
    assert _paco(env, "wait", long, "--timeout", "120", "--home", str(jobs_home), timeout=150).returncode == 0
    job = store.get(long)
    assert (job.status, job.step, job.total, job.attempts) == ("completed", 3, 3, 2)
    deleted = _paco(env, "delete", long, "--files", "--home", str(jobs_home))
    assert deleted.returncode == 0 and not Path(job.run_dir).exists() and store.find(long) is None


def test_a_job_whose_supervisor_and_trainer_are_killed_is_reconciled_as_interrupted(
    tiny_models, tmp_path, jobs_home
):
    env = _env(tmp_path)
    (tmp_path / "hold").touch()
    job_id = _submit(
        env,
        jobs_home,
        _config(tiny_models["flux"], num_iterations=200, checkpoint_every=1000),
        tmp_path / "run",
        "victim",
    )
    store = JobStore(jobs_home)
    job = _until(store, job_id, lambda j: j.step >= 1, 120, "past step 1")
    os.kill(job.supervisor_pid, signal.SIGKILL)
    os.killpg(job.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_process_alive(job.pid, job.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(job_id).status == "running"  # nobody is left to record it ...
    result = _paco(env, "wait", job_id, "--timeout", "30", "--home", str(jobs_home))
    assert result.returncode == 5, result.stderr  # ... until the next reader reconciles
    job = store.get(job_id)
    assert job.status == "interrupted" and job.exit_code is None and "its process is gone" in job.error


def test_the_worker_starts_a_queued_job_and_a_trainer_error_ends_it_failed_with_the_log_tail(
    tiny_models, tmp_path, jobs_home
):
    from paco_core.jobs import runner

    env = _env(tmp_path, hold=False)
    config = _config(tiny_models["flux"], num_iterations=2)
    config["model"] = {**config["model"], "path": str(tmp_path / "no-such-model")}
    job = runner.submit(JobStore(jobs_home), config, env=env, start=False)
    assert job.status == "queued"
    worker = _paco(env, "worker", "--once", "--home", str(jobs_home))
    assert worker.returncode == 0 and worker.stdout.strip() == f"started {job.id}"
    result = _paco(env, "wait", job.id, "--timeout", "120", "--home", str(jobs_home), timeout=150)
    assert result.returncode == 3, result.stderr
    job = JobStore(jobs_home).get(job.id)
    assert job.status == "failed" and job.exit_code == 1
    assert "no-such-model" in job.error
