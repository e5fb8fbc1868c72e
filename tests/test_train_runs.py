"""`paco train` guards its run folder: used folders, config changes on resume, damaged
checkpoints, the run lock, and one-line errors for bad input (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import offline_env, tiny_flux_run
from safetensors.torch import load_file

from paco_core.cli import main
from paco_core.run_folder import RunFolder

FIXTURES = Path(__file__).parent / "fixtures" / "rl"
REPO = Path(__file__).parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path, FIXTURES)


def _write_config(tmp_path: Path, model: Path, run: Path, **extra) -> Path:
    settings = {
        "output_dir": str(run),
        "checkpoint_every": 1,
        "checkpoints_total_limit": 0,
        "num_iterations": 1,
    }
    data = tiny_flux_run(model, **{**settings, **extra})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def _train(tmp_path: Path, config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", "train", "--config", str(config), *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 1 with a one-line ``paco train: error:`` message holding every fragment, no traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("paco train: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


class InProcess:
    """``paco train`` through :func:`paco_core.cli.main` in this process: the same code
    path as the command, without paying torch's import again (refusals, short runs)."""

    def __init__(self, capsys, monkeypatch):
        self.capsys = capsys
        monkeypatch.syspath_prepend(str(FIXTURES))

    def __call__(self, config: Path, *args: str) -> subprocess.CompletedProcess:
        self.capsys.readouterr()
        code = main(["train", "--config", str(config), *args])
        captured = self.capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture
def in_process(capsys, monkeypatch) -> InProcess:
    return InProcess(capsys, monkeypatch)


def _steps(run: Path) -> list[int]:
    return [record["step"] for record in RunFolder(run).read_metrics()]


@pytest.mark.slow
def test_used_folder_resume_config_damaged_checkpoints_fallback_and_overwrite(
    tiny_models, tmp_path, in_process, caplog
):
    run = tmp_path / "run"
    config = _write_config(tmp_path, tiny_models["flux"], run, num_iterations=3)
    first = _train(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [c.step for c in RunFolder(run).checkpoints()] == [1, 2, 3]
    assert all(c.has_manifest for c in RunFolder(run).checkpoints())

    # a fresh run into the used folder would truncate its metrics: refused
    _refused(in_process(config), "already holds a run", "--resume latest", "--overwrite")
    assert _steps(run) == [1, 2, 3]
    # resuming with a changed key that may not change: refused, naming the key
    _refused(
        in_process(config, "--resume", "latest", "--set", "optim.lr=0.05", "--set", "seed=7"),
        "optim.lr: 0.01 -> 0.05",
        "seed: 42 -> 7",
        "checkpoint-3",
    )

    # flip one byte of the newest checkpoint; damage the oldest one's state file
    original = {
        name: tensor.clone()
        for name, tensor in load_file(run / "checkpoint-3" / "policy.safetensors").items()
    }
    policy = run / "checkpoint-3" / "policy.safetensors"
    data = bytearray(policy.read_bytes())
    data[-7] ^= 0x01
    policy.write_bytes(bytes(data))
    (run / "checkpoint-1" / "trainer_state.json").write_text('{"step": 1, "trunc')
    _refused(
        in_process(config, "--resume", str(run / "checkpoint-3")),
        "checkpoint-3",
        "policy.safetensors does not match its sha256",
    )

    # latest falls back to the newest intact checkpoint with a warning, and continues exactly;
    # pruning (now 2 kept) removes the damaged oldest checkpoint without failing the run
    resumed = _train(
        tmp_path,
        config,
        "--resume",
        "latest",
        "--set",
        "num_iterations=4",
        "--set",
        "checkpoints_total_limit=2",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipping a damaged checkpoint" in resumed.stderr and "policy.safetensors" in resumed.stderr
    assert "resuming from checkpoint-2, the newest intact checkpoint" in resumed.stderr
    redone = load_file(run / "checkpoint-3" / "policy.safetensors")
    assert redone.keys() == original.keys() and all(redone[k].equal(original[k]) for k in original), (
        "resuming from checkpoint-2 must redo step 3 bit-identically"
    )
    assert [c.step for c in RunFolder(run).checkpoints()] == [3, 4]
    assert _steps(run) == [1, 2, 3, 4]
    assert RunFolder(run).read_progress()["state"] == "finished"

    # --overwrite starts over: the earlier run's files are gone, unrelated files stay
    (run / "notes.txt").write_text("mine")
    over = in_process(config, "--overwrite", "--set", "num_iterations=1")
    assert over.returncode == 0, over.stderr[-3000:]
    assert _steps(run) == [1] and [c.step for c in RunFolder(run).checkpoints()] == [1]
    assert (run / "notes.txt").read_text() == "mine"
    assert not (run / "run.lock").exists()

    # a checkpoint as written before manifests cannot be verified; a truncated file in it
    # still ends with one line naming the file
    checkpoint = run / "checkpoint-1"
    (checkpoint / "manifest.json").unlink()
    with open(checkpoint / "optimizer.safetensors", "r+b") as handle:
        handle.truncate(100)
    caplog.clear()
    result = in_process(config, "--resume", "latest", "--set", "num_iterations=2")
    _refused(result, "checkpoint-1", "optimizer.safetensors is unreadable")
    assert "written before checkpoints had manifests: not verified" in caplog.text


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_a_killed_ones_lock_is_taken_over(
    tiny_models, tmp_path, in_process, caplog
):
    run = tmp_path / "run"
    config = _write_config(tmp_path, tiny_models["flux"], run, num_iterations=1000, checkpoints_total_limit=2)
    first = subprocess.Popen(
        [sys.executable, "-m", "paco_core.cli", "train", "--config", str(config)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: RunFolder(run).latest_checkpoint() is not None, first)
        # even --overwrite cannot touch a folder in use
        second = in_process(config, "--overwrite")
        _refused(second, f"in use by another trainer (pid {first.pid})")
        assert RunFolder(run).latest_checkpoint() is not None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert RunFolder(run).lock().holder()["pid"] == first.pid  # left behind by kill -9
    step = RunFolder(run).latest_checkpoint().step
    caplog.clear()
    resumed = in_process(config, "--resume", "latest", "--set", f"num_iterations={step + 1}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"taking over the stale lock {run / 'run.lock'} left by pid {first.pid}" in caplog.text
    assert RunFolder(run).read_progress()["step"] == step + 1
    assert not (run / "run.lock").exists()


BAD_INPUTS = {
    "output is a file": (lambda tmp, config: ["--set", f"output_dir={config}"], "is a file, not a folder"),
    "read-only output": (lambda tmp, config: ["--set", f"output_dir={_unwritable(tmp)}"], "choose a writable output_dir"),
    "not a model": (lambda tmp, config: ["--set", f"model.path={_not_a_model(tmp)}"], "model_index.json is missing"),
    "unknown --set key": (lambda tmp, config: ["--set", "optim.lrr=0.1"], "no such config key; did you mean `optim.lr`?"),
    "unknown top key": (lambda tmp, config: ["--set", "num_iteration=3"], "did you mean `num_iterations`?"),
    "not a checkpoint": (lambda tmp, config: ["--resume", str(tmp)], "not a complete checkpoint folder"),
    "cuda without a GPU": (lambda tmp, config: ["--set", "model.device=cuda"], "no usable CUDA GPU"),
}  # fmt: skip


def _unwritable(tmp_path: Path) -> Path:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    # root ignores permissions; a read-only file system stops it too
    return Path("/sys/kernel") if os.access(folder, os.W_OK) else folder


def _not_a_model(tmp_path: Path) -> Path:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"123")
    return folder


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_end_with_one_line_and_exit_1(case, tiny_models, tmp_path, capsys):
    import torch

    if case == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = _write_config(tmp_path, tiny_models["flux"], tmp_path / "run")
    make_args, message = BAD_INPUTS[case]
    try:
        code = main(["train", "--config", str(config), *make_args(tmp_path, config)])
    finally:
        if (tmp_path / "readonly").exists():
            (tmp_path / "readonly").chmod(0o755)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("paco train: error: ")]
    assert code == 1 and len(errors) == 1 and message in errors[0], err[-3000:]
    assert "Traceback" not in err
    if case == "not a model":  # failed while loading: the run folder says so, and holds no results
        run = RunFolder(tmp_path / "run")
        progress = run.read_progress()
        assert progress["state"] == "failed" and "model_index.json is missing" in progress["message"]
        assert not run.has_results()


def test_debug_shows_the_traceback_in_a_real_process(tiny_models, tmp_path):
    config = _write_config(tmp_path, tiny_models["flux"], tmp_path / "run")
    debug = _train(tmp_path, config, "--set", f"output_dir={config}", "--debug")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "TrainingError: output_dir" in debug.stderr


def test_resume_and_overwrite_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "t2is-flux", "--resume", "latest", "--overwrite"])
    assert exit_info.value.code == 2
    assert "--overwrite: not allowed with argument --resume" in capsys.readouterr().err
