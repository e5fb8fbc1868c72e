"""The time and memory estimate before a run: a real probe on the tiny FLUX, the scaling, the
fit check and its suggestions, and `paco jobs submit --dry-run` (which queues nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_flux_run

from paco_core.config import config_from_dict
from paco_core.jobs.store import JobStore
from paco_core.rl import estimate as est
from paco_core.rl.config import TrainConfig

REPO = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def _config(model, **extra) -> TrainConfig:
    data = tiny_flux_run(model, **extra)
    data.setdefault("output_dir", "unused")
    return config_from_dict(TrainConfig, data)


def test_the_probe_measures_one_group_and_scales_to_the_run(tiny_models, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES / "rl"))
    config = _config(
        tiny_models["flux"],
        num_iterations=50,
        sampling={
            "num_steps": 2,
            "noise_steps": [0],
            "train_resolution": 32,
            "eval_resolution": 32,
            "group_size": 2,
            "batch_size": 2,
            "prompts_per_iteration": 3,
            "max_sequence_length": 16,
        },
    )
    found = est.estimate_run(config, num_processes=1, done_steps=10)
    assert found.fits and found.suggestions == [] and found.iterations == 40
    assert found.probe["step_s"] > 0 and found.probe["prompts"] == 1
    assert found.s_per_iteration == pytest.approx(3 * found.probe["step_s"]), (
        "no evaluation: prompts x the probe"
    )
    assert found.total_s == pytest.approx(40 * found.s_per_iteration)
    assert found.peak_memory_gb > 0 and found.memory_gb > found.peak_memory_gb
    assert "s/iteration" in found.summary() and "peak memory" in found.summary()
    json.dumps(found.to_dict())


def test_evaluation_share_and_processes_follow_the_documented_scaling(tiny_models):
    config = _config(tiny_models["flux"], eval_every=5, eval_group_size=4, num_iterations=10)
    # 2 eval rows, eval group 4 of a training group of 2, same steps and size: 4x the rollout time
    assert est.evaluation_seconds(config, rollout_s=1.5, eval_rows=2) == pytest.approx(1.5 * 2 * 2)


def test_a_run_that_does_not_fit_names_the_settings_that_reduce_memory(tiny_models, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES / "rl"))
    monkeypatch.setattr(est, "FIT_SHARE", 1e-9)  # any peak is too much
    config = _config(tiny_models["flux"], num_iterations=2)
    found = est.estimate_run(config)
    assert not found.fits and found.s_per_iteration > 0
    assert found.suggestions[0].startswith("optim.gradient_checkpointing=true")
    assert "does not fit in memory; try: optim.gradient_checkpointing=true" in found.summary()
    judged = config_from_dict(
        TrainConfig,
        {
            **tiny_flux_run(tiny_models["flux"]),
            "output_dir": "x",
            "optim": {"gradient_checkpointing": True},
            "rewards": {"rewards": [{"name": "consistency"}], "judge_path": "/models/judge"},
        },
    )
    hints = est.memory_suggestions(judged)
    assert hints[0].startswith("rewards.judge_offload=true") and "judge server" in hints[1]
    assert "t2is-flux-1gpu" in hints[2]


@pytest.mark.slow
def test_submit_dry_run_prints_the_estimate_and_queues_nothing(tiny_models, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_flux_run(tiny_models["flux"], num_iterations=20)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(FIXTURES / "rl")]),
        "OMP_NUM_THREADS": "1",
    }
    home = tmp_path / "home"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paco_core.cli",
            "jobs",
            "submit",
            "--config",
            str(config),
            "--dry-run",
            "--json",
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["iterations"] == 20 and found["s_per_iteration"] > 0 and found["fits"] is True
    assert JobStore(home).list() == []


@pytest.mark.slow
def test_train_lora_dry_run_shows_the_estimate_and_queues_nothing(tiny_models, tmp_path, monkeypatch):
    from pack_loader import all_node_classes, load_pack, reset_comfy_stub, run_node, widget_defaults

    from paco_core.testing.training import TINY_TRAINING

    reset_comfy_stub(tmp_path / "comfy")
    (tmp_path / "comfy" / "models" / "diffusers").mkdir(parents=True)
    os.symlink(tiny_models["flux"], tmp_path / "comfy" / "models" / "diffusers" / "tiny-flux")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES / "jobs"), str(REPO)]))
    monkeypatch.setenv("PACO_REWARD_FOLDERS", str(FIXTURES / "jobs"))  # rewards from ComfyUI: a reward folder
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pack = load_pack()
    node = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}["PaCoTrainLora"]
    inputs = {
        **widget_defaults(node), "pipeline": "tiny-flux", "training_prompts": "[1x2] a fox\nsits\nruns\n\na boat\nfloats\nsinks",
        "rewards": "job_rewards:held_brightness=1", "iterations": 40, "group_size": 2, "train_resolution": 32,
        "lora_name": "fox", "advanced_json": json.dumps(TINY_TRAINING), "dry_run": True,
    }  # fmt: skip
    output = run_node(node, **inputs)
    text = output.ui.as_dict()["text"][0]
    assert "dry run (nothing queued)" in text and "s/iteration" in text and "for 40 iterations" in text, text
    bridge = __import__(f"{pack.__name__}.nodes.jobs_bridge", fromlist=["job_store"])
    assert bridge.job_store().list() == []
