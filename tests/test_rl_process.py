"""Training as a process: `paco train` under SIGTERM, and two CPU processes under accelerate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import free_port, offline_env, tiny_flux_run
from safetensors.torch import load_file

from paco_core.config import config_from_dict, save_config
from paco_core.rl.config import TrainConfig
from paco_core.rl.trainer import EXIT_STOPPED
from paco_core.run_folder import RunFolder

FIXTURES = Path(__file__).parent / "fixtures" / "rl"
REPO = Path(__file__).parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path, FIXTURES)


def _config(model: Path, output_dir: Path, **extra) -> dict:
    return tiny_flux_run(model, **{"output_dir": str(output_dir), **extra})


def test_sigterm_saves_a_checkpoint_and_exits_with_the_stopped_code(tiny_models, tmp_path):
    run = tmp_path / "run"
    config_path = tmp_path / "config.json"
    save_config(
        config_from_dict(
            TrainConfig, _config(tiny_models["flux"], run, num_iterations=500, checkpoint_every=1000)
        ),
        config_path,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "paco_core.cli", "train", "--config", str(config_path)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and RunFolder(run).read_progress().get("step", 0) < 1:
            assert process.poll() is None, process.communicate()[1][-2000:]
            time.sleep(0.2)
        assert RunFolder(run).read_progress()["state"] == "running"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_STOPPED, stderr[-2000:]
    progress = RunFolder(run).read_progress()
    assert progress["state"] == "stopped" and 1 <= progress["step"] < 500
    checkpoint = run / f"checkpoint-{progress['step']}"
    assert (checkpoint / "lora.safetensors").is_file() and (checkpoint / "trainer_state.json").is_file()
    assert progress["last_checkpoint"] == str(checkpoint)
    assert "stopped at step" in stderr

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "paco_core.cli",
            "train",
            "--config",
            str(config_path),
            "--resume",
            "latest",
            "--set",
            f"num_iterations={progress['step'] + 1}",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert RunFolder(run).read_progress()["state"] == "finished"
    assert [m["step"] for m in RunFolder(run).read_metrics()] == list(range(1, progress["step"] + 2))


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_two_processes_keep_identical_lora_weights(tiny_models, tmp_path, device):
    # accelerate's --cpu flag launches one process; --multi_gpu starts torchrun, and with
    # model.device "cpu" the processes join a gloo group on the CPU. "auto" on a machine
    # without a GPU must do the same (it once left each process alone, each writing the run).
    if device == "auto" and torch.cuda.is_available():
        pytest.skip("auto means the GPU here")
    run = tmp_path / "run"
    config = _config(
        tiny_models["flux"],
        run,
        num_iterations=1,
        checkpoint_every=1,
        sampling={
            "num_steps": 2,
            "noise_steps": [0],
            "train_resolution": 32,
            "group_size": 4,
            "batch_size": 2,
            "prompts_per_iteration": 1,
            "max_sequence_length": 16,
        },
    )
    config["model"]["device"] = device
    config_path = tmp_path / "config.json"
    save_config(config_from_dict(TrainConfig, config), config_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            str(free_port()),
            str(FIXTURES / "two_process_train.py"),
            str(config_path),
            str(tmp_path),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world"] for i in infos] == [2, 2] and [i["micro_batches"] for i in infos] == [[0], [1]]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "LoRA weights differ between processes"
    # lora_B starts at zero (gaussian init): non-zero means the shared step really happened
    assert any(".lora_B." in k and bool(rank0[k].abs().sum() > 0) for k in rank0)
    metrics = RunFolder(run).read_metrics()
    assert [m["step"] for m in metrics] == [1]  # only the main process writes
    assert metrics[0]["policy/optimizer_steps"] == 1
    assert metrics[0]["advantages/num_valid"] == 4  # rewards of both processes were gathered
    assert (run / "checkpoint-1" / "lora.safetensors").is_file()
