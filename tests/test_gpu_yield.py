"""GPU yield: pause requests in the run folder; a paused run ends bit-identical; cancel while paused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.callbacks import Hooks
from paco_core.errors import CancelledError, InputError
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder

ROOT = Path(__file__).parent.parent


def test_pause_requests_per_holder(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert not run.pause_requested() and run.pause_requests() == []
    assert run.release_pause("comfyui") is False
    comfy = run.request_pause("ComfyUI runs a prompt", holder="comfyui")
    run.request_pause("artist pressed pause")
    assert run.pause_requested()
    requests = run.pause_requests()
    assert [r["holder"] for r in requests] == ["comfyui", "user"]
    assert requests[0]["reason"] == "ComfyUI runs a prompt" and requests[0]["since"] == comfy["since"]
    assert requests[0]["pid"] == os.getpid()
    assert run.release_pause("comfyui") is True
    assert run.pause_requested(), "one holder's release must not end another's pause"
    assert run.release_pause(None) is True and not run.pause_requested()
    with pytest.raises(InputError, match="pause holder '../x'"):
        run.request_pause("x", holder="../x")


def test_pause_helpers_need_no_torch(tmp_path):
    code = (
        "import sys; from paco_core.run_folder import RunFolder; r = RunFolder(sys.argv[1]); "
        "r.request_pause('queue busy', holder='comfyui'); assert r.pause_requested(); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(r.pause_requests()[0]['holder'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout
    assert out.strip() == "comfyui"


def test_a_request_while_alive_lapses_with_its_process(tmp_path):
    run = RunFolder(tmp_path / "run")
    code = (
        "import sys, time; from paco_core.run_folder import RunFolder; "
        "RunFolder(sys.argv[1]).request_pause('prompt', holder='comfyui', while_alive=True); "
        "print('asked', flush=True); time.sleep(float(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run.path), "30"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout.readline().strip() == b"asked"
        assert run.pause_requested() and run.pause_requests()[0]["holder"] == "comfyui"
    finally:
        holder.kill()
        holder.wait()
    assert not run.pause_requested(), "a crashed requester must not keep the job paused"
    assert run.pause_path("comfyui").exists()
    # a plain request (a CLI call that exits at once) stays until released
    subprocess.run(
        [sys.executable, "-c", code.replace(", while_alive=True", ""), str(run.path), "0"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert run.pause_requested()


def _yield_config(model, run, **extra):
    settings = {
        # two micro-batches per step: the rollout phase has a pause point inside the step
        "sampling": {"prompts_per_iteration": 2, "group_size": 2, "batch_size": 2},
        "optim": {"lr": 1e-2, "clip_range": 0.2, "kl_beta": 0.05},
        "ema": {"use_ema": True, "update_every": 1},
        "num_iterations": 3, "checkpoint_every": 10, "gpu_policy": "yield",
    }  # fmt: skip
    settings.update(extra)
    return tiny_config(model, run, **settings)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_a_paused_and_continued_run_ends_with_the_same_lora(tiny_models, tmp_path):
    straight = GrpoTrainer(_yield_config(tiny_models["flux"], tmp_path / "straight")).train()
    assert straight.state == "finished"

    run = RunFolder(tmp_path / "paused")
    seen: dict[str, list] = {"states": [], "latency": []}

    def on_progress(done: int, total: int) -> None:
        if done == 1:  # after step 1: a pause the next step boundary must honour
            run.request_pause("ComfyUI runs a prompt", holder="comfyui")

    def pauser() -> None:
        for attempt in range(2):
            _wait_for(lambda: run.read_progress().get("state") == "paused")
            progress = run.read_progress()
            seen["states"].append(progress["state"])
            seen["latency"].append(progress["pause_latency_s"])
            time.sleep(0.4)  # the "prompt" runs
            run.release_pause("comfyui")
            _wait_for(lambda: run.read_progress().get("state") != "paused")
            if attempt == 0:
                # the second pause lands wherever the trainer is in step 2 (rollout, scoring, update)
                run.request_pause("another prompt", holder="comfyui")

    thread = threading.Thread(target=pauser, daemon=True)
    thread.start()
    result = GrpoTrainer(
        _yield_config(tiny_models["flux"], run.path), hooks=Hooks(progress=on_progress)
    ).train()
    thread.join(timeout=60)
    assert result.state == "finished" and result.step == 3
    assert seen["states"] == ["paused", "paused"]

    expected = load_file(tmp_path / "straight" / "checkpoint-3" / "lora.safetensors")
    actual = load_file(run.path / "checkpoint-3" / "lora.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected), "a pause changed the LoRA"
    for name in ("policy.safetensors", "ema.safetensors", "optimizer.safetensors"):
        a, b = (
            load_file(tmp_path / "straight" / "checkpoint-3" / name),
            load_file(run.path / "checkpoint-3" / name),
        )
        assert all(torch.equal(a[k], b[k]) for k in a), name

    progress = run.read_progress()
    assert progress["state"] == "finished" and progress["pauses"] == 2 and progress["paused_s"] >= 0.8
    assert progress["gpu_policy"] == "yield"
    step_times = [m["time/step_s"] for m in run.read_metrics() if "time/step_s" in m]
    # a pause starts at the next step boundary: never more than one step after the request
    assert max(seen["latency"]) <= max(step_times), (seen["latency"], step_times)


def test_exclusive_runs_ignore_pause_requests(tiny_models, tmp_path, caplog):
    run = RunFolder(tmp_path / "run")
    run.request_pause("ignored", holder="comfyui")
    config = _yield_config(tiny_models["flux"], run.path, gpu_policy="exclusive", num_iterations=2)
    with caplog.at_level("WARNING", logger="paco_core.rl.gpu_yield"):
        result = GrpoTrainer(config).train()
    assert result.state == "finished" and result.step == 2
    assert "pauses" not in run.read_progress()
    assert [r.message for r in caplog.records].count(
        f"a pause was requested in {run.control_dir} but gpu_policy is exclusive: training goes on "
        "(set gpu_policy: yield to share the GPU)"
    ) == 1


@pytest.mark.parametrize("how", ["sigterm", "cancel hook"])
def test_a_stop_while_paused_stops_with_a_checkpoint(how, tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    cancelled = threading.Event()

    def on_progress(done: int, total: int) -> None:
        if done == 1:
            run.request_pause("hold", holder="user")

    def check_cancel() -> None:  # a host's interrupt flag (ComfyUI's), polled while paused too
        if cancelled.is_set():
            raise CancelledError("cancelled by the host")

    def stop_when_paused() -> None:
        _wait_for(lambda: run.read_progress().get("state") == "paused")
        time.sleep(0.3)
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler turns it into a stop request
        else:
            cancelled.set()

    thread = threading.Thread(target=stop_when_paused, daemon=True)
    thread.start()
    started = time.time()
    hooks = Hooks(progress=on_progress, check_cancel=check_cancel)
    result = GrpoTrainer(_yield_config(tiny_models["flux"], run.path), hooks=hooks).train()
    thread.join(timeout=30)
    assert result.state == "stopped" and result.step == 1
    assert run.pause_requested(), "the request stays: the trainer stopped, it did not release it"
    assert result.last_checkpoint == run.checkpoint_path(1) and run.checkpoint(1) is not None
    progress = run.read_progress()
    assert progress["state"] == "stopped" and "while paused" in progress["message"]
    assert time.time() - started < 60

    # the stopped run resumes (the pause released) to the same end as an unpaused run
    run.release_pause(None)
    resumed = GrpoTrainer(_yield_config(tiny_models["flux"], run.path)).train(resume="latest")
    straight = GrpoTrainer(_yield_config(tiny_models["flux"], tmp_path / "straight")).train()
    assert resumed.step == straight.step == 3
    a = load_file(run.path / "checkpoint-3" / "lora.safetensors")
    b = load_file(tmp_path / "straight" / "checkpoint-3" / "lora.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
