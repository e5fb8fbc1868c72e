"""Sample now / save now, continue training, queue order and compare: the rules and the bad
inputs (real SQLite, real run folders, the real `paco jobs` command line; no trainer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paco_core import run_requests
from paco_core.errors import InputError
from paco_core.jobs import compare, controls, lineage, queue_order, runner
from paco_core.jobs.store import JobStateError, JobStore
from paco_core.run_folder import RunFolder, process_start_time, write_manifest

REPO = Path(__file__).parent.parent


def _paco(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "jobs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _job(store: JobStore, tmp_path: Path, name: str, status: str, *, kind: str = "flux", device: str = "cpu"):
    config = {"model": {"kind": kind}, "num_iterations": 4, "output_dir": str(tmp_path / name)}
    job = store.create(name=name, config=config, run_dir=tmp_path / name, device=device)
    store.update(job.id, status=status)
    if status == "running":  # alive: this test process is its supervisor
        store.update(job.id, supervisor_pid=os.getpid(), supervisor_start=process_start_time(os.getpid()))
    return store.get(job.id)


def _finished_run(run_dir: Path, steps: tuple[int, ...] = (2, 4), best_step: int = 2) -> None:
    """A run folder as a completed trainer leaves it: checkpoints with manifests, metrics, best/."""
    run = RunFolder(run_dir)
    for step in steps:
        folder = run.checkpoint_path(step)
        folder.mkdir(parents=True)
        (folder / "lora.safetensors").write_bytes(b"lora %d" % step)
        (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
        write_manifest(folder)
    for step in range(1, steps[-1] + 1):
        run.append_metrics(step, {"rewards/aggregated/mean": 0.1 * step, "time/step_s": 1.0 + step})
        if step % 2 == 0:
            run.append_metrics(step, {"eval/rewards/toy/mean": 0.5 + 0.01 * step})
    run.best_dir.mkdir(parents=True)
    (run.best_dir / "lora.safetensors").write_bytes(b"best")
    run.write_best_info({"step": best_step, "value": 0.52})
    run.write_progress(
        state="finished", step=steps[-1], total=steps[-1], best_step=best_step, best_value=0.52
    )


# --- sample now / save now ----------------------------------------------------------------


def test_sample_and_save_requests_reach_the_run_folder_of_a_running_job(tmp_path):
    store = JobStore(tmp_path / "home")
    job = _job(store, tmp_path, "run", "running")
    asked = controls.request(store, job.id, "sample", prompt="a red fox\nsits\nruns")
    assert asked["last"] is None
    pending = run_requests.pending_request(job.run_dir, "sample")
    assert pending["rows"][0]["layout"] == "1x2" and "a red fox" in pending["rows"][0]["prompt"]
    controls.request(store, job.id, "save")
    assert run_requests.pending_request(job.run_dir, "save")["kind"] == "save"
    edit = _job(store, tmp_path, "edit", "running", kind="flux-kontext")
    controls.request(store, edit.id, "sample", prompt="make it blue")
    assert run_requests.pending_request(edit.run_dir, "sample")["instruction"] == "make it blue"


@pytest.mark.parametrize("status", ["queued", "completed", "stopped", "failed"])
def test_sample_or_save_of_a_job_that_is_not_running_is_refused_and_changes_nothing(tmp_path, status):
    store = JobStore(tmp_path / "home")
    job = _job(store, tmp_path, "run", status)
    for kind in ("sample", "save"):
        with pytest.raises(JobStateError, match=f"job {job.id} is {status}; {kind} now needs a running job"):
            controls.request(store, job.id, kind)
        assert run_requests.pending_request(job.run_dir, kind) is None
    assert store.get(job.id).status == status


def test_bad_sample_prompts_are_refused(tmp_path):
    store = JobStore(tmp_path / "home")
    job = _job(store, tmp_path, "run", "running")
    with pytest.raises(InputError, match="the prompt is empty"):
        controls.request(store, job.id, "sample", prompt="  ")
    with pytest.raises(InputError, match="save now takes no prompt"):
        controls.request(store, job.id, "save", prompt="a fox")
    assert run_requests.pending_request(job.run_dir, "sample") is None


# --- continue training ---------------------------------------------------------------------


def test_continue_makes_a_linked_job_whose_run_folder_starts_at_the_parent_checkpoint(tmp_path):
    store = JobStore(tmp_path / "home")
    parent = _job(store, tmp_path, "faces", "completed")
    _finished_run(Path(parent.run_dir))
    child = lineage.continue_job(store, parent.id, iterations=3, start=False)
    assert (child.parent_id, child.parent_step, child.total, child.config["num_iterations"]) == (
        parent.id,
        4,
        7,
        7,
    )
    assert child.status == "queued" and child.resume and child.name == "faces-continued"
    assert child.device == parent.device and child.config["output_dir"] == child.run_dir != parent.run_dir
    run = RunFolder(child.run_dir)
    assert [c.step for c in run.checkpoints()] == [4]
    run.latest_intact_checkpoint().verify()
    assert [m["step"] for m in run.read_metrics()] == [1, 2, 2, 3, 4, 4], "the curves must join"
    assert run.read_best()["step"] == 2
    assert "--resume" in runner.trainer_command(child) and child.to_record()["parent_id"] == parent.id
    assert [j.id for j in lineage.lineage(store, child.id)] == [parent.id, child.id]
    assert [j.id for j in lineage.children(store, parent.id)] == [child.id]

    best = lineage.continue_job(
        store, parent.id, iterations=1, start_from="best", name="from-best", start=False
    )
    assert (best.parent_step, best.total, best.name) == (2, 3, "from-best")
    assert [m["step"] for m in RunFolder(best.run_dir).read_metrics()] == [1, 2, 2]


def test_continue_bad_inputs_are_refused_and_create_no_job(tmp_path):
    store = JobStore(tmp_path / "home")
    running = _job(store, tmp_path, "running", "running")
    failed = _job(store, tmp_path, "failed", "failed")
    done = _job(store, tmp_path, "done", "completed")
    _finished_run(Path(done.run_dir), steps=(4,), best_step=2)
    empty = _job(store, tmp_path, "empty", "stopped")
    count = len(store.list())
    with pytest.raises(JobStateError, match="is running; only completed or stopped jobs can be continued"):
        lineage.continue_job(store, running.id, iterations=5)
    with pytest.raises(JobStateError, match="resume it instead"):
        lineage.continue_job(store, failed.id, iterations=5)
    with pytest.raises(InputError, match="iterations should be a whole number >= 1"):
        lineage.continue_job(store, done.id, iterations=0)
    with pytest.raises(InputError, match=r"best evaluation \(step 2\) has no full checkpoint"):
        lineage.continue_job(store, done.id, iterations=5, start_from="best")
    with pytest.raises(InputError, match="has no intact checkpoint"):
        lineage.continue_job(store, empty.id, iterations=5)
    assert len(store.list()) == count


# --- queue order ----------------------------------------------------------------------------


def test_queued_jobs_move_up_down_and_to_the_front_and_dispatch_follows(tmp_path):
    store = JobStore(tmp_path / "home")
    running = _job(store, tmp_path, "busy", "running")
    a, b, c = (_job(store, tmp_path, name, "queued") for name in "abc")
    other = _job(store, tmp_path, "gpu", "queued", device="cuda:0")
    assert queue_order.positions(store) == {a.id: 1, b.id: 2, c.id: 3, other.id: 1}
    queue_order.move(store, c.id, "front")
    assert [j.id for j in queue_order.queue(store, "cpu")] == [c.id, a.id, b.id]
    queue_order.move(store, a.id, "down")
    assert [j.id for j in queue_order.queue(store, "cpu")] == [c.id, b.id, a.id]
    queue_order.move(store, b.id, "up")
    queue_order.move(store, b.id, "up")  # already first: nothing changes
    assert [j.id for j in queue_order.queue(store, "cpu")] == [b.id, c.id, a.id]
    with pytest.raises(JobStateError, match="is running; only queued jobs can be moved"):
        queue_order.move(store, running.id, "front")
    with pytest.raises(InputError, match="choose one of up, down, front"):
        queue_order.move(store, a.id, "top")
    assert [j.id for j in queue_order.queue(store, "cpu")] == [b.id, c.id, a.id]
    # one running job per device as before; the moved order decides who starts next
    store.update(running.id, status="completed", supervisor_pid=None)
    claimed = []
    monkey = runner.start_supervisor
    try:
        runner.start_supervisor = lambda store, job: claimed.append(job.id) or os.getpid()
        runner.dispatch(store)
    finally:
        runner.start_supervisor = monkey
    assert claimed[0] == b.id and c.id not in claimed and a.id not in claimed


# --- compare -----------------------------------------------------------------------------------


def test_compare_rows_and_curves_of_jobs_of_one_kind(tmp_path):
    store = JobStore(tmp_path / "home")
    one, two = _job(store, tmp_path, "one", "completed"), _job(store, tmp_path, "two", "completed")
    _finished_run(Path(one.run_dir))
    rows = compare.compare(store, [one.id, two.id])
    assert rows[0]["train_reward"] == pytest.approx(0.4) and rows[0]["held_out"] == pytest.approx(0.54)
    assert rows[0]["best_held_out"] == 0.52 and rows[0]["s_per_step"] == pytest.approx(3.5)
    assert rows[1]["train_reward"] is None and rows[1]["held_out"] is None
    curves = compare.curves(store, [one.id, two.id])
    assert curves[0]["train"][-1] == [4, pytest.approx(0.4)] and len(curves[0]["held_out"]) == 2
    table = compare.format_table(rows)
    assert table.splitlines()[0].startswith("ID") and one.id in table and "0.52 (2)" in table


def test_compare_needs_two_jobs_of_one_kind(tmp_path):
    store = JobStore(tmp_path / "home")
    flux = _job(store, tmp_path, "flux", "completed")
    edit = _job(store, tmp_path, "edit", "completed", kind="qwen-image-edit")
    with pytest.raises(InputError, match="compare needs two or more different jobs, got 1"):
        compare.compare(store, [flux.id, flux.id])
    with pytest.raises(
        InputError, match=f"jobs of different kinds cannot be compared \\({flux.id} trains flux"
    ):
        compare.compare(store, [flux.id, edit.id])


# --- the command line ------------------------------------------------------------------------------


def test_cli_bad_inputs_exit_1_with_one_line_and_change_nothing(tmp_path):
    home = str(tmp_path / "home")
    store = JobStore(home)
    done = _job(store, tmp_path, "done", "completed")
    _finished_run(Path(done.run_dir))
    queued = _job(store, tmp_path, "queued", "queued")
    edit = _job(store, tmp_path, "edit", "completed", kind="flux-kontext")
    before = [j.to_dict() for j in store.list()]
    cases = [
        (("sample", done.id), "sample now needs a running job"),
        (("save", queued.id), "save now needs a running job"),
        (("continue", done.id, "--iterations", "0"), "iterations should be a whole number >= 1"),
        (("continue", queued.id, "--iterations", "5"), "only completed or stopped jobs can be continued"),
        (("move", done.id, "up"), "only queued jobs can be moved"),
        (("compare", done.id), "compare needs two or more different jobs"),
        (("compare", done.id, edit.id), "jobs of different kinds cannot be compared"),
    ]
    for args, message in cases:
        result = _paco(*args, "--home", home)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert [j.to_dict() for j in store.list()] == before


def test_cli_continue_move_compare_and_show_lineage(tmp_path):
    home = str(tmp_path / "home")
    store = JobStore(home)
    done = _job(store, tmp_path, "done", "completed")
    _finished_run(Path(done.run_dir))
    _job(store, tmp_path, "busy", "running")  # holds the cpu queue: nothing below starts
    waiting = _job(store, tmp_path, "waiting", "queued")
    result = _paco("continue", done.id, "--iterations", "2", "--home", home)
    assert result.returncode == 0, result.stderr
    child_id = result.stdout.split(":")[0]
    assert f"continues {done.id} from step 4 to 6" in result.stdout
    moved = _paco("move", child_id, "front", "--home", home)
    assert moved.returncode == 0 and moved.stdout.strip() == f"{child_id}: position 1 in the cpu queue"
    listing = _paco("list", "--home", home).stdout
    assert "queued #1" in listing and "queued #2" in listing
    assert [j.id for j in queue_order.queue(store, "cpu")] == [child_id, waiting.id]
    shown = _paco("show", child_id, "--home", home).stdout
    assert f"lineage: {done.id} (done) -> {child_id} (done-continued, from step 4)" in shown
    assert f"continued by: {child_id} (queued)" in _paco("show", done.id, "--home", home).stdout
    table = _paco("compare", done.id, child_id, "--home", home)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3
    rows = json.loads(_paco("compare", done.id, child_id, "--json", "--home", home).stdout)
    assert rows[1]["parent_id"] == done.id and rows[1]["train_reward"] == pytest.approx(0.4)


@pytest.mark.slow
def test_a_continued_job_ends_with_the_lora_of_one_longer_run(tiny_models, tmp_path, monkeypatch):
    """Parent: 2 iterations, completed. Child: 1 more from its last checkpoint, trained the way
    its job would (the same config, --resume latest in its own run folder)."""
    import torch
    from helpers import tiny_flux_run
    from safetensors.torch import load_file

    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.trainer import GrpoTrainer

    monkeypatch.syspath_prepend(str(REPO / "tests" / "fixtures" / "rl"))
    config = tiny_flux_run(tiny_models["flux"], checkpoint_every=1)

    def train(run_dir: Path, iterations: int, resume: str | None = None):
        data = {**config, "num_iterations": iterations, "output_dir": str(run_dir)}
        return GrpoTrainer(config_from_dict(TrainConfig, data)).train(resume=resume)

    straight = train(tmp_path / "straight", 3)
    store = JobStore(tmp_path / "home")
    parent = store.create(
        name="p",
        config=runner.validate_config(
            {**config, "num_iterations": 2, "output_dir": str(tmp_path / "parent")}
        ),
        run_dir=tmp_path / "parent",
        device="cpu",
    )
    assert train(tmp_path / "parent", 2).state == "finished"
    store.update(parent.id, status="completed")
    child = lineage.continue_job(store, parent.id, iterations=1, start=False)
    result = GrpoTrainer(config_from_dict(TrainConfig, child.config)).train(resume="latest")
    assert result.state == "finished" and result.step == 3
    a = load_file(straight.last_checkpoint / "lora.safetensors")
    b = load_file(result.last_checkpoint / "lora.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "the continued LoRA differs from one longer run"
    assert [m["step"] for m in RunFolder(child.run_dir).read_metrics()] == [1, 2, 3]
    assert Path(parent.run_dir, "checkpoint-2", "lora.safetensors").is_file(), "the parent's files stay"
