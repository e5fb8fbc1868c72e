"""The torch-free run folder: progress, metrics, samples, checkpoints, manifest, lock, processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paco_core.errors import TrainingError
from paco_core.run_folder import (
    CheckpointDamagedError,
    RunFolder,
    RunLock,
    RunLockedError,
    is_process_alive,
    process_start_time,
    verify_manifest,
    write_manifest,
)

REPO = Path(__file__).parent.parent


def test_importing_it_loads_neither_torch_nor_numpy():
    code = (
        "import sys, paco_core.run_folder as r; r.RunFolder('x').read_metrics(); "
        "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'safetensors') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_progress_is_rewritten_whole_and_read_back(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.read_progress() == {}
    run.write_progress(state="running", step=3, total=10, last_checkpoint=None)
    record = run.read_progress()
    assert record["state"] == "running" and record["step"] == 3 and record["total"] == 10
    assert record["pid"] == os.getpid() and record["pid_start_time"] == process_start_time(os.getpid())
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="not one of starting, running"):
        run.write_progress(state="done", step=3, total=10)
    run.progress_path.write_text("{not json")
    assert run.read_progress() == {}


def test_metrics_append_read_series_and_truncate(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_metrics() == [] and run.metric_series("loss") == []
    for step in (1, 2, 3):
        run.append_metrics(step, {"loss": 1.0 / step, "lr": 0.1})
    run.append_metrics(2, {"eval/score": 0.5})
    assert [m["step"] for m in run.read_metrics()] == [1, 2, 3, 2]
    assert run.metric_series("loss") == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    assert run.metric_series("eval/score") == [(2, 0.5)]
    assert run.metric_names() == ["eval/score", "loss", "lr"]
    # a line being appended right now (no newline yet) is not read half-way
    with open(run.metrics_path, "a") as handle:
        handle.write('{"step": 4, "loss": 0.2')
    assert [m["step"] for m in run.read_metrics()] == [1, 2, 3, 2]
    run.truncate_metrics_after(2)
    assert [(m["step"], sorted(m)) for m in run.read_metrics()] == [
        (1, ["loss", "lr", "step"]),
        (2, ["loss", "lr", "step"]),
        (2, ["eval/score", "step"]),
    ]
    assert run.metrics_path.read_text().endswith("\n")


def test_samples_and_config(tmp_path):
    run = RunFolder(tmp_path)
    assert run.sample_paths() == [] and run.latest_sample() is None and run.read_config() == {}
    assert run.sample_path(10) == tmp_path / "samples" / "step-000010.png"
    for step in (10, 2, 0):
        run.sample_path(step).parent.mkdir(exist_ok=True)
        run.sample_path(step).write_bytes(b"png")
    (run.samples_dir / "notes.txt").write_text("x")
    assert [step for step, _ in run.sample_paths()] == [0, 2, 10]
    assert run.latest_sample() == run.sample_path(10)
    run.write_config({"seed": 1, "optim": {"lr": 0.1}})
    assert run.read_config() == {"optim": {"lr": 0.1}, "seed": 1}
    run.config_path.write_text("[1, 2]")
    with pytest.raises(TrainingError, match="should hold a JSON object"):
        run.read_config()


def _checkpoint(run: RunFolder, step: int, *, manifest: bool = True) -> Path:
    folder = run.checkpoint_path(step)
    (folder / "sub").mkdir(parents=True)
    (folder / "lora.safetensors").write_bytes(os.urandom(3000))
    (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    (folder / "sub" / "extra.bin").write_bytes(b"abc")
    if manifest:
        write_manifest(folder)
    return folder


def test_checkpoints_are_listed_by_step_and_staging_folders_are_not(tmp_path):
    run = RunFolder(tmp_path)
    assert run.checkpoints() == [] and run.latest_checkpoint() is None and run.lora_path() is None
    for step in (10, 2, 7):
        _checkpoint(run, step)
    run.staging_path(12).mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-5").mkdir()  # no manifest, no state: incomplete
    assert [c.step for c in run.checkpoints()] == [2, 7, 10]
    assert run.latest_checkpoint().step == 10
    assert run.lora_path() == tmp_path / "checkpoint-10" / "lora.safetensors"
    assert run.lora_path(7) == tmp_path / "checkpoint-7" / "lora.safetensors"
    assert run.lora_path(5) is None and run.checkpoint(3) is None
    # a damaged state file neither hides a checkpoint nor breaks the list
    (tmp_path / "checkpoint-7" / "trainer_state.json").write_text("{trunc")
    assert [c.step for c in run.checkpoints()] == [2, 7, 10]
    with pytest.raises(CheckpointDamagedError, match="trainer_state.json is unreadable"):
        run.checkpoint(7).read_state()


def test_manifest_names_the_truncated_flipped_or_missing_file(tmp_path):
    folder = _checkpoint(RunFolder(tmp_path), 4)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["lora.safetensors", "sub/extra.bin", "trainer_state.json"]
    assert manifest["files"]["lora.safetensors"]["size"] == 3000
    verify_manifest(folder)

    lora = folder / "lora.safetensors"
    original = lora.read_bytes()
    flipped = bytearray(original)
    flipped[1500] ^= 0xFF
    lora.write_bytes(bytes(flipped))
    with pytest.raises(
        CheckpointDamagedError, match=r"lora.safetensors does not match its sha256.*corrupted"
    ):
        verify_manifest(folder)
    lora.write_bytes(original[:1000])
    with pytest.raises(
        CheckpointDamagedError, match="lora.safetensors has 1000 bytes, the manifest says 3000"
    ):
        verify_manifest(folder)
    lora.write_bytes(original)
    (folder / "sub" / "extra.bin").unlink()
    with pytest.raises(CheckpointDamagedError, match="sub/extra.bin is missing"):
        verify_manifest(folder)
    (folder / "manifest.json").write_text('{"files": 3}')
    with pytest.raises(CheckpointDamagedError, match="manifest.json is unreadable"):
        verify_manifest(folder)
    (folder / "manifest.json").write_text('{"files": {"../../etc/passwd": {"size": 1, "sha256": "x"}}}')
    with pytest.raises(CheckpointDamagedError, match="a path outside it"):
        verify_manifest(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(CheckpointDamagedError, match="has no manifest.json"):
        verify_manifest(folder)


def test_latest_intact_checkpoint_skips_damaged_ones_with_a_warning(tmp_path, caplog):
    run = RunFolder(tmp_path)
    for step in (2, 4, 6):
        _checkpoint(run, step)
    _checkpoint(run, 1, manifest=False)  # an older version's checkpoint: usable, unverified
    with open(run.checkpoint_path(6) / "lora.safetensors", "r+b") as handle:
        handle.truncate(10)
    (run.checkpoint_path(4) / "trainer_state.json").write_text('{"step": 5}')
    with caplog.at_level(logging.WARNING, logger="paco_core.run_folder"):
        assert run.latest_intact_checkpoint().step == 2
    assert "checkpoint-6" in caplog.text and "lora.safetensors has 10 bytes" in caplog.text
    assert "checkpoint-4" in caplog.text and "trainer_state.json does not match" in caplog.text
    for step in (2,):
        (run.checkpoint_path(step) / "lora.safetensors").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="paco_core.run_folder"):
        assert run.latest_intact_checkpoint().step == 1
    assert "written before checkpoints had manifests" in caplog.text


def test_pruning_keeps_the_newest_and_never_fails(tmp_path, caplog, monkeypatch):
    run = RunFolder(tmp_path)
    for step in (1, 2, 3, 4):
        _checkpoint(run, step)
    (run.checkpoint_path(1) / "trainer_state.json").write_text("garbage")  # damaged: still prunable
    assert run.prune_checkpoints(0) == []
    removed = run.prune_checkpoints(2, protect=run.checkpoint_path(4))
    assert removed == [run.checkpoint_path(1), run.checkpoint_path(2)]
    assert [c.step for c in run.checkpoints()] == [3, 4]

    import shutil

    real_rmtree = shutil.rmtree

    def refuse_checkpoint_3(path, *args, **kwargs):
        if Path(path).name == "checkpoint-3":
            raise PermissionError(13, "Permission denied", str(path))
        return real_rmtree(path, *args, **kwargs)

    _checkpoint(run, 5)
    monkeypatch.setattr(shutil, "rmtree", refuse_checkpoint_3)
    with caplog.at_level(logging.WARNING, logger="paco_core.run_folder"):
        assert run.prune_checkpoints(1, protect=run.checkpoint_path(5)) == [run.checkpoint_path(4)]
    assert "could not delete the old checkpoint" in caplog.text and "checkpoint-3" in caplog.text
    assert [c.step for c in run.checkpoints()] == [3, 5]


def test_used_entries_and_clear_touch_only_run_files(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.used_entries() == [] and not run.is_used() and not run.has_results()
    run.path.mkdir()
    (run.path / "train.log").write_text("a log the job runner keeps")
    (run.path / "run.lock").write_text("{}")
    assert not run.is_used()
    # a run that failed before its first step leaves no results
    run.write_config({"seed": 1})
    run.write_progress(state="failed", step=0, total=5, message="boom")
    run.metrics_path.write_text("")
    (run.samples_dir).mkdir()
    (run.tensorboard_dir).mkdir()
    assert run.used_entries() == ["config.json", "metrics.jsonl", "progress.json", "samples", "tb"]
    assert run.result_entries() == [] and not run.has_results()
    run.clear()
    run.write_progress(state="finished", step=1, total=1)
    run.append_metrics(1, {"x": 1})
    _checkpoint(run, 1)
    run.staging_path(2).mkdir()
    assert run.used_entries() == [".checkpoint-2.tmp", "checkpoint-1", "metrics.jsonl", "progress.json"]
    assert run.result_entries() == ["checkpoint-1", "metrics.jsonl"] and run.has_results()
    run.clear()
    assert sorted(p.name for p in run.path.iterdir()) == ["run.lock", "train.log"]
    file_path = RunFolder(tmp_path / "run" / "train.log")
    with pytest.raises(TrainingError, match="is a file, not a folder"):
        file_path.check_usable()


def test_process_identity_survives_pid_reuse():
    me = os.getpid()
    start = process_start_time(me)
    assert isinstance(start, int) and start > 0
    assert is_process_alive(me, start) and is_process_alive(me)
    assert not is_process_alive(me, start + 1)  # same pid, another start time: a reused pid
    assert not is_process_alive(0) and not is_process_alive(-5) and not is_process_alive(None)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child_start = process_start_time(child.pid)
    child.wait()
    assert not is_process_alive(child.pid, child_start)
    assert process_start_time(child.pid) is None


def test_a_zombie_counts_as_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and is_process_alive(child.pid, start):
        time.sleep(0.05)  # exited but not reaped: a zombie
    assert not is_process_alive(child.pid, start)
    child.wait()


def _hold_lock(folder: Path) -> subprocess.Popen:
    code = (
        "import sys, time; from paco_core.run_folder import RunLock; lock = RunLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path, caplog):
    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=rf"in use by another trainer \(pid {holder.pid}\)"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # killed: its lock file stays behind, stale
    assert RunLock(tmp_path).holder()["pid"] == holder.pid
    with caplog.at_level(logging.WARNING, logger="paco_core.run_folder"):
        with RunLock(tmp_path) as lock:
            assert lock.holder()["pid"] == os.getpid()
    assert f"stale lock {tmp_path / 'run.lock'} left by pid {holder.pid}" in caplog.text
    assert not (tmp_path / "run.lock").exists()


def test_lock_of_a_reused_pid_is_stale(tmp_path, caplog):
    # a lock naming a live pid (ours) but another start time: the pid was reused
    record = {
        "pid": os.getpid(),
        "start_time": process_start_time(os.getpid()) - 1,
        "host": os.uname().nodename,
    }
    (tmp_path / "run.lock").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="paco_core.run_folder"):
        lock = RunLock(tmp_path).acquire()
    assert lock.held and "stale lock" in caplog.text
    # and the same pid with the right start time is alive: a second acquire is refused
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    lock.release()


def test_lock_in_an_unwritable_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: use a read-only file system
            folder = Path("/sys/kernel")
            if os.access(folder, os.W_OK) and not _cannot_create(folder):
                pytest.skip("no unwritable folder available")
        with pytest.raises(
            TrainingError, match="cannot write to the run folder .* choose a writable output_dir"
        ):
            RunLock(folder).acquire()
    finally:
        (tmp_path / "readonly").chmod(0o755)


def _cannot_create(folder: Path) -> bool:
    try:
        (folder / "paco-probe").touch()
    except OSError:
        return True
    (folder / "paco-probe").unlink()
    return False
