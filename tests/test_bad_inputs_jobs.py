"""Bad inputs and faults against the job store, the runner, ``paco jobs`` and the /paco/jobs routes
(issue 17, items 1, 3, 4, 5, 6 and 9): each gives one clear line or a 4xx/503, and nothing outside
is touched or lost. Real SQLite, real ``paco jobs`` processes, real files; no trainer runs.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from test_jobs_store import _config

from paco_core.errors import ConfigError, InputError
from paco_core.jobs import runner
from paco_core.jobs.export import ExportError, export_folder, export_job, exported_files
from paco_core.jobs.store import JobStateError, JobStore, JobStoreBusyError, JobStoreError
from paco_core.run_folder import RunFolder, process_start_time

REPO = Path(__file__).parent.parent


def _paco(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "jobs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr


def _write_results(run_dir: Path, steps=(1, 2), state: str = "finished") -> None:
    """What a trainer leaves: checkpoints with a LoRA, metrics, a sample, progress and a log."""
    folder = RunFolder(run_dir)
    for step in steps:
        checkpoint = run_dir / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "lora.safetensors").write_bytes(f"lora of step {step} in {run_dir.name}".encode())
        (checkpoint / "trainer_state.json").write_text(json.dumps({"step": step}))
        folder.append_metrics(step, {"loss": 0.5})
    folder.samples_dir.mkdir(exist_ok=True)
    folder.sample_path(steps[-1]).write_bytes(b"png")
    folder.write_progress(state=state, step=steps[-1], total=steps[-1])
    (run_dir / "train.log").write_text("paco train: step 1/2\n")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# =============================================================== 1. nothing lost on delete


def test_delete_files_removes_only_what_the_job_wrote_in_a_users_folder(tmp_path):
    home = tmp_path / "home"
    store = JobStore(home)
    mine = tmp_path / "my-project"
    (mine / "refs").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    (mine / "refs" / "face.png").write_bytes(b"my reference")
    job = runner.submit(store, _config(tmp_path), run_dir=mine, start=False)
    _write_results(mine)
    (mine / "samples" / "my-sketch.png").write_bytes(b"mine too")
    runner.cancel(store, job.id)
    result = _paco("delete", job.id, "--files", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert "other files there are kept" in result.stdout
    assert _files(mine) == {
        "notes.txt": b"my notes",
        "refs/face.png": b"my reference",
        "samples/my-sketch.png": b"mine too",
    }


def test_delete_files_of_a_folder_the_job_created_removes_the_folder(tmp_path):
    store = JobStore(tmp_path / "home")
    job = runner.submit(store, _config(tmp_path), start=False)
    _write_results(Path(job.run_dir))
    runner.cancel(store, job.id)
    deleted = runner.delete(store, job.id, files=True)
    assert not Path(job.run_dir).exists() and "checkpoint-1" in deleted.removed_files


def test_a_finished_jobs_folder_is_refused_at_submit_unless_resume_or_overwrite(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    first = runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    _write_results(run)
    store.update(first.id, status="completed", **runner.progress_fields(store.get(first.id)))
    before = _files(run)
    with pytest.raises(InputError, match=rf"holds job {first.id}'s run .*--resume.*--overwrite"):
        runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    with pytest.raises(InputError, match="contradict"):
        runner.submit(store, _config(tmp_path), run_dir=run, start=False, resume=True, overwrite=True)
    assert [j.id for j in store.list()] == [first.id] and _files(run) == before


def test_a_run_that_paco_train_left_is_refused_too(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    _write_results(run)
    with pytest.raises(InputError, match=r"holds an earlier run \(checkpoint-1, checkpoint-2, metrics.jsonl"):
        runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    assert store.list() == []


def test_resume_as_a_new_job_takes_the_folder_and_the_first_job_never_deletes_or_claims_it(tmp_path):
    home = tmp_path / "home"
    store = JobStore(home)
    run = tmp_path / "run"
    first = runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    _write_results(run)
    store.update(first.id, status="stopped", **runner.progress_fields(store.get(first.id)))
    second = runner.submit(store, _config(tmp_path, num_iterations=5), run_dir=run, start=False, resume=True)
    assert second.resume and RunFolder(run).read_owner() == second.id
    assert "--resume" in runner.trainer_command(second)
    (run / "checkpoint-3").mkdir()  # the second job's own checkpoint
    (run / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (run / "checkpoint-3" / "lora.safetensors").write_bytes(b"second job's lora")
    assert runner.progress_fields(store.get(first.id)) == {}  # never the second job's files
    assert runner.progress_fields(store.get(second.id))["last_checkpoint"] == str(run / "checkpoint-3")
    with pytest.raises(JobStateError, match=f"now belongs to job {second.id}"):
        runner.resume(store, first.id, start=False)
    before = _files(run)
    result = _paco("delete", first.id, "--files", "--home", str(home))
    assert result.returncode == 0 and f"now belongs to job {second.id}" in result.stdout
    assert _files(run) == before


def test_overwrite_deletes_only_the_earlier_runs_files_and_the_earlier_record_points_nowhere(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    run.mkdir()
    (run / "mine.txt").write_text("keep me")
    first = runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    _write_results(run)
    store.update(first.id, status="completed", **runner.progress_fields(store.get(first.id)))
    assert store.get(first.id).lora == str(run / "checkpoint-2" / "lora.safetensors")
    second = runner.submit(store, _config(tmp_path), run_dir=run, start=False, overwrite=True)
    assert sorted(os.listdir(run)) == ["job.json", "mine.txt"]
    assert RunFolder(run).read_owner() == second.id
    old = store.get(first.id)
    assert (old.last_checkpoint, old.best_checkpoint, old.lora) == (None, None, None)


def test_a_queued_or_running_jobs_folder_is_refused_even_with_overwrite(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    first = runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    for how in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(InputError, match=f"belongs to job {first.id} \\(queued\\)"):
            runner.submit(store, _config(tmp_path), run_dir=run, start=False, **how)
    with pytest.raises(InputError, match=f"belongs to job {first.id}"):  # the same folder by another path
        runner.submit(store, _config(tmp_path), run_dir=str(run) + "/./", start=False)


def test_jobs_from_before_job_json_sharing_a_folder_keep_their_files_on_delete(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    _write_results(run)
    older = store.create(name="a", config={}, run_dir=run, device="cpu")
    newer = store.create(name="b", config={}, run_dir=run, device="cpu")
    for job in (older, newer):
        store.update(job.id, status="failed")
    before = _files(run)
    deleted = runner.delete(store, newer.id, files=True)
    assert deleted.removed_files == [] and f"jobs {older.id} use the same run folder" in deleted.kept_because
    assert _files(run) == before


def test_the_delete_route_removes_only_the_jobs_files(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "portrait.png").write_bytes(b"mine")
    job = runner.submit(store, _config(tmp_path), run_dir=mine, start=False)
    _write_results(mine)
    runner.cancel(store, job.id)
    [(status, body)] = comfy_routes["call"]([("DELETE", f"/paco/jobs/{job.id}?files=1", {})])
    assert status == 200 and body["id"] == job.id and "checkpoint-2" in body["removed_files"]
    assert _files(mine) == {"portrait.png": b"mine"}


# =============================================================== 3. each job's LoRA is its own; names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 353, "name has 353 characters, more than 100"),
        ("red\x1b[31m", r"control character '\\x1b'"),
        ("two\nlines", r"control character '\\n'"),
        ("back\rwards", r"control character '\\r'"),
        ("evil\u202egnp.exe", r"control character '\\u202e'"),
        ("   ", "name is empty"),
    ],
)
def test_bad_job_names_are_refused_at_submit_and_no_job_is_made(tmp_path, name, message):
    store = JobStore(tmp_path / "home")
    with pytest.raises(InputError, match=message):
        runner.submit(store, _config(tmp_path), name=name, start=False)
    assert store.list() == [] and not (tmp_path / "home" / "runs").exists()


def test_the_cli_refuses_a_long_name_in_one_line_naming_the_flag(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(_config(tmp_path)))
    result = _paco("submit", "--config", str(config), "--name", "y" * 353, "--home", str(tmp_path / "home"))
    _one_line_error(result, "--name has 353 characters")


def test_list_and_show_print_control_characters_escaped_never_raw(tmp_path):
    home = tmp_path / "home"
    store = JobStore(home)
    with store.transaction() as connection:  # a name written before names were checked
        connection.execute(
            "INSERT INTO jobs (id, name, status, created_at, updated_at, config, run_dir, device, error)"
            " VALUES ('job-0000beef', ?, 'failed', 1.0, 1.0, '{}', ?, 'cpu', ?)",
            ("\x1b]0;pwned\x07\x1b[2Jname", str(tmp_path / "r"), "boom\x1b[31m"),
        )
    for action in ("list", "show"):
        result = _paco(action, *(["job-0000beef"] if action == "show" else []), "--home", str(home))
        assert result.returncode == 0 and "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "\\x1b]0;pwned\\x07\\x1b[2Jname" in result.stdout


def test_two_jobs_with_one_name_export_into_their_own_folders(tmp_path):
    store = JobStore(tmp_path / "home")
    root = tmp_path / "loras" / "paco"
    jobs = []
    for number in (1, 2):
        job = runner.submit(store, _config(tmp_path), name="fox", start=False)
        _write_results(Path(job.run_dir), steps=(number,))
        status = "completed" if number == 1 else "failed"
        store.update(job.id, status=status, **runner.progress_fields(store.get(job.id)))
        jobs.append(store.get(job.id))
    for job in jobs:
        export_job(job, root)
    first, second = (exported_files(job, root) for job in jobs)
    assert [p.name for p in first] == ["fox-step1.safetensors", "fox.safetensors"]
    assert [p.name for p in second] == ["fox-step2.safetensors"]  # failed: no final file, nothing of job 1
    assert first[0].parent == root / "fox" / jobs[0].id != second[0].parent
    assert first[0].read_bytes() == b"lora of step 1 in " + Path(jobs[0].run_dir).name.encode()
    assert export_folder(root, jobs[0]) == export_folder(root, store.get(jobs[0].id))  # stable


def test_an_export_that_cannot_be_written_is_one_line_and_the_checkpoints_stay(tmp_path):
    store = JobStore(tmp_path / "home")
    job = runner.submit(store, _config(tmp_path), name="fox", start=False)
    _write_results(Path(job.run_dir))
    store.update(job.id, status="completed", **runner.progress_fields(store.get(job.id)))
    root = tmp_path / "loras-is-a-file"
    root.write_text("not a folder")
    before = _files(Path(job.run_dir))
    with pytest.raises(
        ExportError, match=f"cannot export the LoRA of job {job.id} to .*checkpoints are untouched"
    ):
        export_job(store.get(job.id), root)
    assert _files(Path(job.run_dir)) == before


def test_train_lora_node_refuses_a_long_lora_name_naming_it(comfy_routes):
    from pack_loader import run_node

    node = comfy_routes["nodes"]["PaCoTrainLora"]
    from pack_loader import widget_defaults

    inputs = {**widget_defaults(node), "lora_name": "z" * 353}
    with pytest.raises(InputError, match="lora_name has 353 characters"):
        run_node(node, **inputs)
    assert comfy_routes["store"]().list() == []


# =============================================================== 4. GPU yield, two ComfyUIs on one user folder


def test_two_comfyuis_each_hold_their_own_pause_and_the_job_waits_for_both(comfy_routes, tmp_path):
    watch = importlib.import_module(f"{comfy_routes['pack'].__name__}.nodes.jobs_watch")
    bridge = comfy_routes["bridge"]
    assert bridge.comfy_pause_holder() == f"comfyui-{os.getpid()}"
    store = bridge.job_store()
    job = store.create(
        name="y", config={"gpu_policy": "yield"}, run_dir=tmp_path / "run", device="cpu", gpu_policy="yield"
    )
    me = os.getpid()
    store.update(job.id, status="running", supervisor_pid=me, supervisor_start=process_start_time(me))
    job = store.get(job.id)
    server = comfy_routes["server"]
    first, second = (watch.JobsWatcher(server, holder=h) for h in ("comfyui-first", "comfyui-second"))
    run = RunFolder(job.run_dir)
    first._yield_gpu(job, True, "cpu")
    second._yield_gpu(job, True, "cpu")
    assert sorted(r["holder"] for r in run.pause_requests()) == ["comfyui-first", "comfyui-second"]
    second._yield_gpu(job, False, "cpu")  # the second ComfyUI's prompt ended
    assert run.pause_requested() and [r["holder"] for r in run.pause_requests()] == ["comfyui-first"]
    first._yield_gpu(job, False, "cpu")
    assert not run.pause_requested()


# =============================================================== 5. job store faults


def _store_with_jobs(home: Path, count: int) -> JobStore:
    store = JobStore(home)
    for number in range(count):
        store.create(
            name=f"job {number}", config={"pad": "x" * 500}, run_dir=home / f"r{number}", device="cpu"
        )
    with store.connect() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def test_a_damaged_store_is_one_line_that_says_what_to_do_and_is_left_as_it_is(tmp_path):
    home = tmp_path / "home"
    store = _store_with_jobs(home, 60)
    data = bytearray(store.path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + 400] = b"\xa5" * 400
    store.path.write_bytes(bytes(data))
    result = _paco("list", "--home", str(home))
    _one_line_error(result, "is damaged", "move it aside")
    assert store.path.read_bytes() == bytes(data)  # nothing changed: the user may recover it
    with pytest.raises(JobStoreError, match="is damaged"):
        store.list()


@pytest.fixture
def immutable():
    """chattr +i as this user can (root in a container); undone after the test."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_an_immutable_store_lists_and_refuses_changes_in_one_line(tmp_path, immutable):
    home = tmp_path / "home"
    store = JobStore(home)
    job = store.create(name="kept", config={}, run_dir=tmp_path / "r", device="cpu")
    with store.connect() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    immutable(store.path)
    listing = _paco("list", "--home", str(home))
    assert listing.returncode == 0 and job.id in listing.stdout and "Traceback" not in listing.stderr
    _one_line_error(_paco("cancel", job.id, "--home", str(home)), "is read-only", "chattr -i")
    assert JobStore(home).get(job.id).status == "queued"


def test_a_write_lock_held_by_another_process_never_blocks_list_and_a_write_waits_then_says_so(tmp_path):
    home = tmp_path / "home"
    store = JobStore(home)
    job = store.create(name="kept", config={}, run_dir=tmp_path / "r", device="cpu")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
                "c.execute('BEGIN IMMEDIATE'); c.execute(\"UPDATE jobs SET name = 'x' WHERE 0\");"
                "print('locked', flush=True); time.sleep(35)"
            ),
            str(store.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        listing = _paco("list", "--home", str(home))
        assert listing.returncode == 0 and job.id in listing.stdout, listing.stderr
        assert time.monotonic() - started < 20 and "statuses not refreshed" in listing.stderr
        assert "Traceback" not in listing.stderr
        hurried = JobStore(home, busy_timeout_s=0.5)
        with pytest.raises(JobStoreBusyError, match="stayed locked by another process for 0.5 s"):
            hurried.update(job.id, name="changed")
    finally:
        holder.kill()
        holder.wait()
    assert store.get(job.id).name == "kept"


def test_a_store_deleted_while_comfyui_runs_is_made_again(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    store.create(name="before", config={}, run_dir=tmp_path / "r", device="cpu")
    for suffix in ("", "-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    [(status, body)] = comfy_routes["call"]([("GET", "/paco/jobs", {})])
    assert (status, body) == (200, {"jobs": []})
    job = runner.submit(store, _config(tmp_path), start=False)
    assert [j.id for j in store.list()] == [job.id]


def test_a_clock_stepping_back_does_not_mark_a_normal_finish_interrupted(tmp_path):
    store = JobStore(tmp_path / "home")
    run = tmp_path / "run"
    job = runner.submit(store, _config(tmp_path), run_dir=run, start=False)
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        store.update(
            job.id,
            status="running",
            started_at=time.time() + 3600,  # then the clock went back an hour
            pid=trainer.pid,
            pid_start=process_start_time(trainer.pid),
        )
        subprocess.run(  # the trainer's last word, written after it started
            [
                sys.executable,
                "-c",
                "import sys; from paco_core.run_folder import RunFolder; "
                "RunFolder(sys.argv[1]).write_progress(state='finished', step=3, total=3)",
                str(run),
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert runner.final_status(store.get(job.id), 0) == ("completed", None)
    finally:
        trainer.kill()
        trainer.wait()


@pytest.mark.slow
def test_the_supervisor_survives_a_store_it_cannot_write_and_records_the_end_later(tmp_path, immutable):
    home = tmp_path / "home"
    store = JobStore(home)
    job = runner.submit(store, _config(tmp_path), start=False)
    store.update(job.id, status="running", started_at=time.time())
    (Path(job.run_dir) / runner.CONFIG_FILE).write_text("{}")
    with store.connect() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    supervisor = subprocess.Popen(  # its trainer fails after its imports: the model folder does not exist
        [sys.executable, "-m", "paco_core.jobs.supervise", job.id, "--home", str(home)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while store.get(job.id).pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    immutable(store.path)  # as when the disk fills up mid-run
    lines = []
    for line in supervisor.stdout:
        lines.append(line)
        if "trainer exited with code" in line:
            break
    time.sleep(2 * 2.0)  # two rounds of trying to record the end
    assert supervisor.poll() is None, "".join(lines)  # alive, waiting for the store
    assert store.get(job.id).status == "running"
    subprocess.run(["chattr", "-i", str(store.path)], check=True)
    assert supervisor.wait(timeout=60) == 0
    output = "".join(lines) + supervisor.stdout.read()
    assert output.count("cannot update the job store now") == 1, output
    assert "Traceback" not in output.split("trainer exited with code")[1], output
    ended = store.get(job.id)
    assert ended.status == "failed" and ended.exit_code == 1, output


# =============================================================== 6. numbers


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"rewards": {"rewards": [{"name": "toy_rewards:mean_brightness", "weight": float("nan")}]}},
            r"rewards.rewards\[0\].weight` should be a finite number, got nan",
        ),
        (
            {"rewards": {"rewards": [{"name": "toy_rewards:mean_brightness", "weight": float("inf")}]}},
            r"rewards.rewards\[0\].weight` should be a finite number, got inf",
        ),
        ({"num_iterations": 10**20}, "`num_iterations` is too large"),
        ({"seed": 2**70}, "`seed` is too large"),
        ({"optim": {"lr": float("inf")}}, "`optim.lr` should be a finite number"),
    ],
)
def test_numbers_no_store_or_tensor_holds_are_refused_at_submit_naming_the_field(tmp_path, changes, field):
    store = JobStore(tmp_path / "home")
    with pytest.raises(ConfigError, match=field):
        runner.submit(store, _config(tmp_path, **changes), start=False)
    assert store.list() == []


def test_the_cli_refuses_huge_iterations_in_one_line_and_resume_refuses_them_too(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "c.json"
    config.write_text(json.dumps(_config(tmp_path)))
    result = _paco(
        "submit",
        "--config",
        str(config),
        "--set",
        "num_iterations=100000000000000000000",
        "--home",
        str(home),
    )
    _one_line_error(result, "num_iterations")
    store = JobStore(home)
    job = runner.submit(store, _config(tmp_path), start=False)
    runner.cancel(store, job.id)
    with pytest.raises(ConfigError, match="num_iterations should be a whole number from 1 to"):
        runner.resume(store, job.id, num_iterations=10**20, start=False)
    _one_line_error(
        _paco("resume", job.id, "--iterations", str(2**70), "--home", str(home)), "num_iterations"
    )
    assert store.get(job.id).total == 3


def test_the_resume_route_answers_400_for_huge_iterations(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    job = runner.submit(store, _config(tmp_path), start=False)
    runner.cancel(store, job.id)
    [(status, body)] = comfy_routes["call"](
        [("POST", f"/paco/jobs/{job.id}/resume", {"json": {"iterations": 10**20}})]
    )
    assert status == 400 and "num_iterations" in body["error"]
    assert store.get(job.id).status == "stopped"


# =============================================================== 9. logs


def test_the_log_route_reads_only_a_bounded_tail_of_a_huge_single_line_log(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    job = runner.submit(store, _config(tmp_path), start=False)
    log = Path(job.run_dir) / runner.LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as handle:
        for _ in range(40):
            handle.write(b"x" * (1 << 20))  # 40 MiB, no newline
        handle.write(b"the end")
    [(status, body)] = comfy_routes["call"]([("GET", f"/paco/jobs/{job.id}/log?lines=1", {})])
    assert status == 200 and len(body["lines"]) == 1 and len(body["lines"][0]) <= 2001
    assert body["lines"][0].endswith("the end")
    tracemalloc.start()
    lines = runner.read_log_tail(store.get(job.id), 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20 and body == {"lines": lines}


def test_paco_jobs_logs_prints_a_bounded_tail_in_bounded_chunks(tmp_path):
    home = tmp_path / "home"
    store = JobStore(home)
    job = runner.submit(store, _config(tmp_path), start=False)
    log = Path(job.run_dir) / runner.LOG_FILE
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as handle:
        for number in range(200_000):
            handle.write(f"line {number:06d} {'.' * 40}\n".encode())  # about 10 MiB
    result = _paco("logs", job.id, "--home", str(home), "--tail-kib", "64")
    assert result.returncode == 0 and len(result.stdout) <= 64 << 10
    assert result.stdout.endswith("line 199999 " + "." * 40 + "\n")
    chunks = list(runner.follow_log(store, job.id))
    assert max(len(c) for c in chunks) <= runner.LOG_CHUNK_BYTES and "".join(chunks) == log.read_text()
    _one_line_error(_paco("logs", job.id, "--home", str(home), "--tail-kib", "0"), "--tail-kib")


def test_a_log_that_links_out_of_the_run_folder_is_never_read(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    job = runner.submit(store, _config(tmp_path), start=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret\n")
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)
    os.symlink(secret, Path(job.run_dir) / runner.LOG_FILE)
    [(status, body)] = comfy_routes["call"]([("GET", f"/paco/jobs/{job.id}/log", {})])
    assert (
        status == 404 and "leads out of its run folder" in body["error"] and "secret" not in json.dumps(body)
    )
    home = store.home
    result = _paco("logs", job.id, "--home", str(home))
    _one_line_error(result, "leads out of its run folder")
    assert "the secret" not in result.stdout


def test_a_fifo_as_train_log_never_hangs_a_reader(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    job = runner.submit(store, _config(tmp_path), start=False)
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)
    os.mkfifo(Path(job.run_dir) / runner.LOG_FILE)
    [(status, body)] = comfy_routes["call"]([("GET", f"/paco/jobs/{job.id}/log", {})])
    assert (status, body) == (200, {"lines": []})


@pytest.mark.slow
def test_a_log_file_gets_each_warning_once_and_no_progress_bars(tmp_path):
    code = (
        "import logging, sys\n"
        "logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')\n"
        "from paco_core.commands.train import quiet_logs_for_a_file\n"
        "quiet_logs_for_a_file()\n"
        "from transformers.utils import logging as hf_logging\n"
        "from tqdm.auto import tqdm\n"
        "clip = hf_logging.get_logger('transformers.models.clip.tokenization_clip')\n"
        "for n in range(50):\n"
        "    clip.warning('The following part of your input was truncated because CLIP can only handle '\n"
        "                 f'sequences up to 77 tokens: [prompt {n}]')\n"
        "    for _ in tqdm(range(3), desc='Loading weights'): pass\n"
        "logging.getLogger('paco_core.rl.trainer').info('saved checkpoint-1')\n"
        "logging.getLogger('paco_core.rl.trainer').setLevel(logging.INFO)\n"
        "import warnings; [warnings.warn('a deprecated thing', FutureWarning) for _ in range(3)]\n"
    )
    log = tmp_path / "train.log"
    with open(log, "wb") as handle:
        subprocess.run(
            [sys.executable, "-c", code],
            stdout=handle,
            stderr=handle,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    text = log.read_text()
    assert "\r" not in text, text[:500]
    assert text.count("truncated because CLIP") == 1, text
    assert text.count("a deprecated thing") == 1, text
    from paco_core.jobs.supervise import trainer_env

    assert trainer_env()["TQDM_DISABLE"] == "1"


# =============================================================== the ComfyUI side (test double)


@pytest.fixture
def comfy_routes(tmp_path):
    """The pack loaded into the ComfyUI test double with its /paco/jobs routes; ``call`` runs requests."""
    from aiohttp.test_utils import TestClient, TestServer
    from pack_loader import all_node_classes, load_pack, reset_comfy_stub

    base = tmp_path / "comfy"
    base.mkdir()
    reset_comfy_stub(base)
    pack = load_pack()
    bridge = importlib.import_module(f"{pack.__name__}.nodes.jobs_bridge")
    importlib.import_module(f"{pack.__name__}.nodes.jobs_watch").install_server_hooks()
    import server

    instance = server.PromptServer.instance

    def call(requests):
        async def go():
            answers = []
            async with TestServer(instance.stub_app(), host="127.0.0.1") as test_server:
                async with TestClient(test_server) as client:
                    for method, path, kwargs in requests:
                        response = await client.request(method, path, **kwargs)
                        answers.append((response.status, await response.json()))
            return answers

        return asyncio.run(go())

    nodes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    yield {
        "call": call,
        "store": bridge.job_store,
        "bridge": bridge,
        "pack": pack,
        "server": instance,
        "nodes": nodes,
    }
    shutil.rmtree(base, ignore_errors=True)


def test_store_faults_in_a_route_are_503_one_line(comfy_routes, tmp_path):
    store = comfy_routes["store"]()
    store.create(name="a", config={}, run_dir=tmp_path / "r", device="cpu")
    with store.connect() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(store.path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page
    store.path.write_bytes(bytes(data))
    [(status, body)] = comfy_routes["call"]([("GET", "/paco/jobs", {})])
    assert status == 503 and set(body) == {"error"} and "damaged" in body["error"]
    assert "\n" not in body["error"]
