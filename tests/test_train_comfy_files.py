"""`paco train` on ComfyUI's split files instead of a diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paco_core.cli import main
from paco_core.config import config_from_dict
from paco_core.errors import ConfigError
from paco_core.rl.config import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures" / "rl"


@pytest.fixture(autouse=True)
def toy_rewards_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def files_model(models: Path) -> dict:
    return {
        "kind": "flux",
        "device": "cpu",
        "transformer_file": str(models / "diffusion_models" / "tiny-flux-fp8_scaled.safetensors"),
        "text_encoder_files": [
            str(models / "text_encoders" / "tiny-flux-clip_l.safetensors"),
            str(models / "text_encoders" / "tiny-flux-t5xxl.safetensors"),
        ],
        "vae_file": str(models / "vae" / "tiny-flux-ae.safetensors"),
        "config_folder": str(models / "paco_configs" / "tiny-flux"),
    }


def run_config(model: dict, output_dir: Path) -> dict:
    return {
        "model": model,
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 2, "noise_steps": [0, 1], "train_resolution": 32, "eval_resolution": 32,
                     "group_size": 2, "batch_size": 2, "prompts_per_iteration": 1, "max_sequence_length": 16},
        "data": {"train_file": str(FIXTURES / "sets.jsonl"), "num_eval_prompts": 1},
        "rewards": {"rewards": [{"name": "toy_rewards:mean_brightness", "weight": 1.0}], "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "ema": {"use_ema": False},
        "num_iterations": 1, "output_dir": str(output_dir), "checkpoint_every": 1, "eval_every": 0,
    }  # fmt: skip


def test_paco_train_runs_on_comfyui_files(tiny_models, tmp_path):
    models = tiny_models["comfyui"] / "models"
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(run_config(files_model(models), tmp_path / "run")))
    assert main(["train", "--config", str(config_file)]) == 0
    assert list((tmp_path / "run").glob("checkpoint-1/*.safetensors"))


def test_training_config_takes_a_folder_or_files_not_both(tiny_models, tmp_path):
    models = tiny_models["comfyui"] / "models"
    with pytest.raises(ConfigError, match="`model.path` and `model.text_encoder_files` both set"):
        config_from_dict(
            TrainConfig, run_config({**files_model(models), "path": str(tiny_models["flux"])}, tmp_path)
        )
    config = config_from_dict(
        TrainConfig, run_config({**files_model(models), "vae_file": "missing.safetensors"}, tmp_path)
    )
    with pytest.raises(ConfigError, match="`model.vae_file` 'missing.safetensors' does not exist"):
        config.check_ready()
