"""The job store and the runner's bookkeeping, without a trainer: real SQLite, real processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paco_core.errors import ConfigError, InputError
from paco_core.jobs import runner
from paco_core.jobs import store as st
from paco_core.jobs.store import JobNotFoundError, JobStateError, JobStore
from paco_core.run_folder import RunFolder, process_start_time

REPO = Path(__file__).parent.parent
SETS = REPO / "tests" / "fixtures" / "rl" / "sets.jsonl"


def _config(tmp_path: Path, **extra) -> dict:
    data = {
        "model": {"kind": "flux", "path": str(tmp_path / "no-model-needed"), "device": "cpu"},
        "data": {"train_file": str(SETS)},
        "rewards": {"rewards": [{"name": "toy_rewards:mean_brightness"}]},
        "num_iterations": 3,
    }
    data.update(extra)
    return data


def _paco(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "jobs", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_importing_the_jobs_package_loads_neither_torch_nor_numpy_nor_comfyui():
    code = (
        "import sys, paco_core.jobs, paco_core.jobs.runner, paco_core.jobs.supervise, paco_core.commands.jobs;"
        "from paco_core.jobs.runner import validate_config;"
        "print(sorted(m for m in ('torch', 'numpy', 'comfy', 'diffusers') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_new_store_uses_wal_and_the_latest_schema(tmp_path):
    store = JobStore(tmp_path / "home")
    assert store.path == (tmp_path / "home" / "jobs.sqlite3").resolve()
    with store.connect() as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.schema_version(connection) == st.SCHEMA_VERSION == len(st.MIGRATIONS)
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


def test_home_comes_from_the_argument_then_paco_home_then_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PACO_HOME", str(tmp_path / "env-home"))
    assert st.resolve_home(tmp_path / "given") == (tmp_path / "given").resolve()
    assert st.resolve_home() == (tmp_path / "env-home").resolve()
    monkeypatch.delenv("PACO_HOME")
    assert st.resolve_home() == Path(os.path.expanduser("~/.paco")).resolve()


def test_a_version_1_store_is_migrated_in_place_and_keeps_its_jobs(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    connection = st.open_connection(home / st.STORE_FILE)
    assert st.migrate(connection, target=1) == 1
    connection.execute(
        "INSERT INTO jobs (id, name, status, created_at, updated_at, config, run_dir, device, step, total)"
        " VALUES ('job-0000abcd', 'old', 'completed', 1.0, 2.0, '{\"num_iterations\": 5}', '/r', 'cpu', 5, 5)"
    )
    columns = [row[1] for row in connection.execute("PRAGMA table_info(jobs)")]
    assert "gpu_policy" not in columns
    connection.close()

    store = JobStore(home)
    with store.connect() as connection:
        assert st.schema_version(connection) == st.SCHEMA_VERSION
        versions = [
            row[0] for row in connection.execute("SELECT version FROM schema_version ORDER BY version")
        ]
    assert versions == list(range(1, st.SCHEMA_VERSION + 1))
    job = store.get("job-0000abcd")
    assert (job.name, job.status, job.step, job.gpu_policy, job.config) == (
        "old",
        "completed",
        5,
        "exclusive",
        {"num_iterations": 5},
    )
    JobStore(home)  # opening again applies nothing twice
    with store.connect() as connection:
        assert connection.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == st.SCHEMA_VERSION


def test_a_store_from_a_newer_version_is_refused_with_a_clear_message(tmp_path):
    JobStore(tmp_path)
    with sqlite3.connect(tmp_path / st.STORE_FILE) as connection:
        connection.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(InputError, match="schema version 99, newer than this pack's"):
        JobStore(tmp_path)


def test_records_look_like_comfyui_jobs_with_progress_and_training_fields(tmp_path):
    store = JobStore(tmp_path)
    job = store.create(name="faces", config={"num_iterations": 7}, run_dir=tmp_path / "run", device="cuda:0")
    assert job.id.startswith("job-") and len(job.id) == 12 and job.status == "queued" and job.total == 7
    store.update(
        job.id, status="running", started_at=time.time(), step=3, last_checkpoint=str(tmp_path / "c3")
    )
    record = store.get(job.id).to_record()
    assert record["id"] == job.id and record["status"] == "running"
    assert record["progress"] == {"step": 3, "total": 7}
    assert isinstance(record["create_time"], int) and abs(record["create_time"] - time.time() * 1000) < 60_000
    assert isinstance(record["execution_start_time"], int) and record["execution_end_time"] is None
    assert record["lora"] == str(tmp_path / "c3" / "lora.safetensors") == record["best_lora"]
    for key in ("pid", "run_dir", "exit_code", "error", "device", "gpu_policy"):
        assert key in record
    json.dumps(record)


def test_an_unknown_id_names_the_closest_ids(tmp_path):
    store = JobStore(tmp_path)
    job = store.create(name="a", config={}, run_dir=tmp_path / "a", device="cpu", job_id="job-1a2b3c4d")
    with pytest.raises(JobNotFoundError, match=f"no job 'job-1a2b3c4e': did you mean {job.id}"):
        store.get("job-1a2b3c4e")
    with pytest.raises(st.JobNotFoundError, match="did you mean job-1a2b3c4d"):
        store.get("1a2b")


def test_update_with_expect_only_changes_a_job_in_an_expected_status(tmp_path):
    store = JobStore(tmp_path)
    job = store.create(name="a", config={}, run_dir=tmp_path / "a", device="cpu")
    assert not store.update(job.id, expect=("running",), status="completed")
    assert store.update(job.id, expect=("queued",), status="running")
    assert store.get(job.id).status == "running"
    with pytest.raises(ValueError, match="unknown job status"):
        store.update(job.id, status="paused")


WRITER = """
import sys, time
from paco_core.jobs.store import JobStore
store = JobStore(sys.argv[1])
job = store.create(name=sys.argv[2], config={"n": 0}, run_dir=sys.argv[2], device="cpu")
for i in range(1, int(sys.argv[3]) + 1):
    with store.transaction() as connection:
        row = connection.execute("SELECT step FROM jobs WHERE id = ?", (job.id,)).fetchone()
        connection.execute("UPDATE jobs SET step = ?, config = ? WHERE id = ?", (row[0] + 1, '{"n": %d}' % i, job.id))
    store.update(job.id, total=i)
    store.list()
print(job.id)
"""


def test_two_processes_writing_one_store_never_corrupt_it(tmp_path):
    JobStore(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), f"w{k}", "200"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    ids = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
        ids.append(out.strip())
    store = JobStore(tmp_path)
    assert store.integrity_check() == "ok"
    for job_id in ids:
        job = store.get(job_id)
        assert (job.step, job.total, job.config) == (200, 200, {"n": 200})


# --- runner bookkeeping (no trainer) ----------------------------------------------------------


def test_submit_validates_the_config_and_names_the_bad_field(tmp_path):
    store = JobStore(tmp_path / "home")
    with pytest.raises(ConfigError, match="optim.lr"):
        runner.submit(store, _config(tmp_path, optim={"lr": -1}), start=False)
    with pytest.raises(ConfigError, match="data.train_file"):
        runner.submit(
            store, _config(tmp_path, data={"train_file": str(tmp_path / "missing.jsonl")}), start=False
        )
    assert store.list() == []


def test_submit_resolves_paths_and_records_the_environment_without_secrets(tmp_path):
    store = JobStore(tmp_path / "home")
    env = {
        "PYTHONPATH": "/x",
        "HF_HOME": "/hf",
        "PACO_TEST": "1",
        "HF_TOKEN": "s3cret",
        "OPENAI_API_KEY": "k",
    }
    job = runner.submit(store, _config(tmp_path), name="n", start=False, env=env)
    assert job.status == "queued" and job.device == "cpu" and job.name == "n"
    assert job.run_dir == str((tmp_path / "home" / "runs" / job.id).resolve())
    assert job.config["output_dir"] == job.run_dir
    assert job.launch["env"] == {"PYTHONPATH": "/x", "HF_HOME": "/hf", "PACO_TEST": "1"}
    with pytest.raises(InputError, match=f"belongs to job {job.id}"):
        runner.submit(store, _config(tmp_path), run_dir=job.run_dir, start=False)


def test_device_slots_and_conflicts():
    assert runner.device_slot("auto") == runner.device_slot("cuda") == "cuda:0"
    assert runner.device_slot("cpu") == "cpu" and runner.device_slot("cuda:1") == "cuda:1"
    assert runner.device_slot("cuda", num_processes=2) == "cuda:*"
    assert runner.devices_conflict("cuda:*", "cuda:1") and not runner.devices_conflict("cuda:0", "cuda:1")
    assert not runner.devices_conflict("cpu", "cuda:*")


def test_trainer_command_uses_accelerate_for_several_processes_or_a_config_file(tmp_path):
    store = JobStore(tmp_path / "home")
    accel = tmp_path / "fsdp.yaml"
    accel.write_text("distributed_type: FSDP\n")
    one = runner.submit(store, _config(tmp_path), start=False)
    assert runner.trainer_command(one)[1:4] == ["-m", "paco_core.cli", "train"]
    two = runner.submit(
        store,
        _config(tmp_path, model={"kind": "flux", "path": "m", "device": "cuda"}),
        num_processes=2,
        start=False,
    )
    command = runner.trainer_command(two)
    assert command[1:3] == ["-m", "accelerate.commands.launch"] and "--num_processes" in command
    assert command[command.index("-m", 3) : command.index("-m", 3) + 3] == ["-m", "paco_core.cli", "train"]
    assert two.device == "cuda:*"
    three = runner.submit(store, _config(tmp_path), accelerate_config=str(accel), start=False)
    assert ["--config_file", str(accel)] == runner.trainer_command(three)[3:5]
    with pytest.raises(InputError, match="does not exist"):
        runner.submit(store, _config(tmp_path), accelerate_config=str(tmp_path / "nope.yaml"), start=False)


def _dead_process() -> tuple[int, int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = process_start_time(process.pid)
    process.kill()
    process.wait()
    return process.pid, start


def _running_job(store: JobStore, tmp_path: Path, **fields):
    job = store.create(name="r", config={"num_iterations": 4}, run_dir=tmp_path / "run", device="cpu")
    store.update(job.id, status="running", started_at=time.time() - 1, **fields)
    return store.get(job.id)


def test_a_job_whose_processes_died_mid_run_becomes_interrupted(tmp_path):
    store = JobStore(tmp_path / "home")
    pid, start = _dead_process()
    job = _running_job(store, tmp_path, supervisor_pid=pid, supervisor_start=start, pid=pid, pid_start=start)
    RunFolder(job.run_dir).write_progress(state="running", step=2, total=4)
    runner.reconcile(store)
    job = store.get(job.id)
    assert job.status == "interrupted" and job.step == 2 and job.ended_at is not None
    assert f"paco jobs resume {job.id}" in job.error


def test_a_reused_pid_does_not_keep_a_dead_job_running(tmp_path):
    store = JobStore(tmp_path / "home")
    me = os.getpid()  # alive, but started at another time than the recorded one
    job = _running_job(store, tmp_path, supervisor_pid=me, supervisor_start=process_start_time(me) + 1)
    runner.reconcile(store)
    assert store.get(job.id).status == "interrupted"
    alive = _running_job(store, tmp_path / "b", supervisor_pid=me, supervisor_start=process_start_time(me))
    runner.reconcile(store)
    assert store.get(alive.id).status == "running"


def test_a_final_progress_state_decides_the_status_of_a_job_nobody_watched(tmp_path):
    store = JobStore(tmp_path / "home")
    pid, start = _dead_process()
    for state, expected in (("finished", "completed"), ("stopped", "stopped"), ("failed", "failed")):
        job = _running_job(store, tmp_path / state, supervisor_pid=pid, supervisor_start=start)
        RunFolder(job.run_dir).write_progress(state=state, step=4, total=4, message="boom")
        runner.reconcile(store)
        assert store.get(job.id).status == expected
    assert store.get(job.id).error == "boom"


def test_a_progress_file_older_than_the_attempt_is_not_trusted(tmp_path):
    store = JobStore(tmp_path / "home")
    pid, start = _dead_process()
    RunFolder(tmp_path / "run").write_progress(state="finished", step=4, total=4)
    job = _running_job(store, tmp_path, supervisor_pid=pid, supervisor_start=start)
    store.update(job.id, started_at=time.time() + 5)
    runner.reconcile(store)
    assert store.get(job.id).status == "interrupted"


def test_a_claim_whose_dispatcher_died_goes_back_to_the_queue(tmp_path):
    store = JobStore(tmp_path / "home")
    job = _running_job(store, tmp_path)
    runner.reconcile(store)
    assert store.get(job.id).status == "running"  # within the grace period: being started
    store.update(job.id, started_at=time.time() - runner.START_GRACE_S - 1)
    runner.reconcile(store)
    assert store.get(job.id).status == "queued"


def test_cancel_of_a_queued_job_stops_it_at_once_and_delete_keeps_files(tmp_path):
    store = JobStore(tmp_path / "home")
    job = runner.submit(store, _config(tmp_path), start=False)
    assert Path(job.run_dir, "job.json").is_file()  # submit makes the folder and marks it the job's
    assert runner.cancel(store, job.id).status == "stopped"
    with pytest.raises(JobStateError, match="already ended"):
        runner.cancel(store, job.id)
    runner.delete(store, job.id)
    assert store.find(job.id) is None and Path(job.run_dir).is_dir()


def test_delete_is_refused_while_running_and_resume_only_for_resumable_jobs(tmp_path):
    store = JobStore(tmp_path / "home")
    me = os.getpid()
    job = _running_job(store, tmp_path, supervisor_pid=me, supervisor_start=process_start_time(me))
    with pytest.raises(JobStateError, match="cancel it first"):
        runner.delete(store, job.id)
    with pytest.raises(JobStateError, match="only stopped, failed, interrupted jobs can be resumed"):
        runner.resume(store, job.id)
    store.update(job.id, status="interrupted")
    resumed = runner.resume(store, job.id, num_iterations=9, start=False)
    assert (resumed.status, resumed.resume, resumed.total, resumed.config["num_iterations"]) == (
        "queued",
        True,
        9,
        9,
    )


# --- the command line's errors ---------------------------------------------------------------


def test_cli_errors_are_one_line_with_documented_exit_codes(tmp_path):
    home = str(tmp_path / "home")
    store = JobStore(home)
    store.create(name="a", config={}, run_dir=tmp_path / "a", device="cpu", job_id="job-1a2b3c4d")
    store.update("job-1a2b3c4d", status="completed")
    result = _paco("show", "job-1a2b3c4x", "--home", home)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no job 'job-1a2b3c4x': did you mean job-1a2b3c4d?" in result.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_config(tmp_path, sampling={"group_size": 0})))
    result = _paco("submit", "--config", str(bad), "--home", home)
    assert (
        result.returncode == 1 and result.stderr.count("\n") == 1 and "sampling.group_size" in result.stderr
    )
    result = _paco("submit", "--config", str(tmp_path / "missing.json"), "--home", home)
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = _paco("wait", "--home", home)
    assert result.returncode == 2
    result = _paco("resume", "job-1a2b3c4d", "--home", home)
    assert result.returncode == 1 and "is completed; only stopped, failed, interrupted" in result.stderr

    listing = _paco("list", "--json", "--home", home)
    assert listing.returncode == 0 and [r["id"] for r in json.loads(listing.stdout)] == ["job-1a2b3c4d"]
    shown = json.loads(_paco("show", "job-1a2b3c4d", "--json", "--home", home).stdout)
    for key in ("id", "status", "step", "total", "pid", "run_dir", "lora", "best_lora", "exit_code", "error"):
        assert key in shown


def test_submitting_the_same_config_again_with_reuse_returns_the_existing_job(tmp_path):
    store = JobStore(tmp_path / "home")
    first = runner.submit(store, _config(tmp_path), name="faces", start=False)
    assert runner.submit(store, _config(tmp_path), name="faces", start=False, reuse=True).id == first.id
    assert runner.submit(store, _config(tmp_path), name="other", start=False, reuse=True).id != first.id
    changed = runner.submit(store, _config(tmp_path, num_iterations=4), name="faces", start=False, reuse=True)
    assert changed.id != first.id
    assert runner.submit(store, _config(tmp_path), name="faces", start=False).id != first.id  # a new run
    assert len(store.list()) == 4


def test_logs_follow_returns_once_the_job_has_ended_with_every_line(tmp_path):
    store = JobStore(tmp_path / "home")
    job = store.create(name="a", config={}, run_dir=tmp_path / "run", device="cpu")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.log").write_text("step 1\n")
    store.update(job.id, status="completed")
    assert "".join(runner.follow_log(store, job.id, follow=True, poll=0.01)) == "step 1\n"
    with pytest.raises(JobNotFoundError):
        list(runner.follow_log(store, "job-00000000"))
