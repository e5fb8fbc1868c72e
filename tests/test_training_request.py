"""The one path from a training request to a config (paco_core/jobs/training_request.py), shared by
PaCo Train LoRA, `paco train` and `paco jobs submit`; and errors that carry the setting (or file
field) they are about, so callers map them to their own words without reading the message."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
from pack_loader import load_pack

from paco_core.cli import main
from paco_core.config import config_from_dict, config_to_dict
from paco_core.errors import ConfigError, InputError, ModelLoadError, PaCoError
from paco_core.jobs.training_request import TrainingRequest, build_training_config
from paco_core.models.comfy_files import ComfyModelFiles, check_model_files
from paco_core.rl.config import TrainConfig
from paco_core.rl.presets import preset_dict

SETS_TEXT = "[1x2] a red fox in the snow\nThe fox sits.\nThe fox runs.\n"


def test_an_error_carries_the_fields_it_is_about():
    assert PaCoError("plain").field is None and PaCoError("plain").fields == ()
    one = ConfigError("`optim.lr` should be positive", field="optim.lr")
    assert (one.field, one.fields, str(one)) == ("optim.lr", ("optim.lr",), "`optim.lr` should be positive")
    several = ModelLoadError("two files", field=("transformer", "kind"))
    assert several.field == "transformer" and several.fields == ("transformer", "kind")
    assert InputError("a", "b").args == ("a", "b")  # positional arguments as before


def test_the_settings_go_into_the_presets_config_and_the_overrides_win_in_order(tmp_path):
    config = build_training_config(
        TrainingRequest(
            preset="t2is-flux",
            training_prompts=SETS_TEXT,
            prompts_folder=tmp_path,
            rewards="consistency=0.2, clip_t",
            iterations=7,
            learning_rate=1e-4,
            group_size=6,
            train_resolution=256,
            advanced_json=json.dumps({"seed": 5, "optim": {"lr": 2e-4}}),
            overrides=["seed=9"],
        )
    )
    assert config["num_iterations"] == 7 and config["optim"]["lr"] == 2e-4 and config["seed"] == 9
    assert config["sampling"]["group_size"] == 6 and config["sampling"]["train_resolution"] == 256
    assert 6 % config["sampling"]["batch_size"] == 0  # the preset's batch size divides the group
    assert config["rewards"]["rewards"] == [
        {"name": "consistency", "weight": 0.2},
        {"name": "clip_t", "weight": 1.0},
    ]
    rows = [json.loads(line) for line in open(config["data"]["train_file"], encoding="utf-8")]
    assert [row["layout"] for row in rows] == ["1x2"] and config["data"]["train_file"].startswith(
        str(tmp_path)
    )
    again = build_training_config(
        TrainingRequest(preset="t2is-flux", training_prompts=SETS_TEXT, prompts_folder=tmp_path)
    )
    assert again["data"]["train_file"] == config["data"]["train_file"]  # named by content: written once
    untouched = preset_dict("t2is-flux")
    assert build_training_config(TrainingRequest(preset="t2is-flux")) == untouched


def test_gpu_sharing_the_run_folder_and_references(tmp_path):
    shared = build_training_config(
        TrainingRequest(
            preset="t2is-flux",
            model={"device": "cpu"},
            host_device="cpu",
            own_run_folder=True,
            advanced_json='{"output_dir": "runs/x"}',
            references=["a.png"],
        )
    )
    assert shared["gpu_policy"] == "yield" and "output_dir" not in shared
    assert shared["rewards"]["references"] == ["a.png"]
    assert shared["rewards"]["rewards"][-1] == {"name": "reference", "weight": 1.0}
    elsewhere = build_training_config(
        TrainingRequest(
            preset="t2is-flux",
            model={"device": "cpu"},
            host_device="cuda:0",
            rewards="reference=0.5",
            references=["a.png"],
        )
    )
    assert elsewhere["gpu_policy"] == "exclusive"  # another device: nothing to share
    assert elsewhere["rewards"]["rewards"] == [{"name": "reference", "weight": 0.5}]


@pytest.mark.parametrize(
    ("request_changes", "field"),
    [
        ({"rewards": "consistency=lots"}, "rewards"),
        ({"advanced_json": "{not json"}, "advanced_json"),
        ({"advanced_json": "[1, 2]"}, "advanced_json"),
        ({"judge": type("Old", (), {"source": None})()}, "judge"),
        ({"judge": type("WithLora", (), {"source": "/j", "lora": "/a"})()}, "judge"),
        ({"preset": None}, "preset"),
    ],
)
def test_a_bad_setting_is_an_error_whose_field_names_it(request_changes, field):
    with pytest.raises(InputError) as raised:
        build_training_config(TrainingRequest(**{"preset": "t2is-flux", **request_changes}))
    assert raised.value.field == field and "\n" not in str(raised.value)


def test_the_command_line_goes_through_the_same_function(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"num_iterations": 4, "sampling": {"group_size": 4}}))
    args = ["train", "--preset", "t2is-flux", "--config", str(path), "--set", "seed=3", "--print-config"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    request = TrainingRequest(preset="t2is-flux", config_file=path, overrides=["seed=3"])
    assert printed == config_to_dict(config_from_dict(TrainConfig, build_training_config(request)))
    assert printed["num_iterations"] == 4 and printed["seed"] == 3
    # `paco jobs submit` refuses a typo in --set as `paco train` does, before any job exists
    home = tmp_path / "home"
    assert main(["jobs", "submit", "--preset", "t2is-flux", "--set", "optim.lrr=1", "--home", str(home)]) == 1
    assert "no such config key; did you mean `optim.lr`?" in capsys.readouterr().err
    assert not (home / "runs").exists()


@pytest.fixture(scope="module")
def comfy_models(tiny_models):
    return tiny_models["comfyui"] / "models"


def flux_files(models, **changes) -> ComfyModelFiles:
    values = {
        "transformer": str(models / "diffusion_models" / "tiny-flux.safetensors"),
        "text_encoders": (
            str(models / "text_encoders" / "tiny-flux-clip_l.safetensors"),
            str(models / "text_encoders" / "tiny-flux-t5xxl.safetensors"),
        ),
        "vae": str(models / "vae" / "tiny-flux-ae.safetensors"),
        "config_folder": str(models / "paco_configs" / "tiny-flux"),
    }
    return ComfyModelFiles(**{**values, **changes})


def test_comfyui_files_errors_name_the_files_field(comfy_models, tmp_path):
    models = comfy_models
    vae = str(models / "vae" / "tiny-flux-ae.safetensors")
    clip = str(models / "text_encoders" / "tiny-flux-clip_l.safetensors")
    qwen_vae = str(models / "vae" / "tiny-qwen-image-edit-qwen_image_vae.safetensors")
    truncated = tmp_path / "t5-cut.safetensors"
    whole = (models / "text_encoders" / "tiny-flux-t5xxl.safetensors").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    cases = [
        (flux_files(models, text_encoders=(clip, vae)), ("text_encoders.1",)),  # a VAE among the encoders
        (flux_files(models, text_encoders=(clip, str(truncated))), ("text_encoders.1",)),
        (flux_files(models, text_encoders=(clip,)), ("text_encoders",)),  # t5xxl missing
        (flux_files(models, vae=None), ("vae",)),
        (flux_files(models, vae=qwen_vae), ("vae",)),  # another model's VAE
        (flux_files(models, kind="qwen-image-edit"), ("transformer", "kind")),
        (flux_files(models, kind="sideways"), ("kind",)),
        (flux_files(models, config_folder=str(models / "paco_configs" / "tiny-qwen-image-edit")),
         ("config_folder",)),
        (flux_files(models, config_folder=str(tmp_path)), ("config_folder",)),  # no model_index.json
    ]  # fmt: skip
    for files, fields in cases:
        with pytest.raises((InputError, ModelLoadError)) as raised:
            check_model_files(files)
        assert raised.value.fields == fields, (files, str(raised.value))
    assert check_model_files(flux_files(models)) == "flux"


def test_the_train_node_maps_file_fields_to_its_inputs_through_a_table(tmp_path):
    training = importlib.import_module(f"{load_pack().__name__}.nodes.training")
    chosen = {"diffusion_model": "x.safetensors", "text_encoder_1": "(none)",
              "text_encoder_2": "t5.safetensors", "vae": "(checkpoint's)",
              "checkpoint": "(none)"}  # fmt: skip
    assert training.files_inputs(("text_encoders.0",), chosen) == ["text_encoder_2"]  # the first one chosen
    assert training.files_inputs(("text_encoders",), chosen) == ["text_encoder_1"]  # the one left empty
    assert training.files_inputs(("transformer", "kind"), chosen) == ["diffusion_model", "files_kind"]
    assert training.files_inputs(("config_folder", "vae", "checkpoint"), chosen) == [
        "files_config",
        "vae",
        "checkpoint",
    ]
    assert training.files_inputs(("something new",), chosen) == []
    # a config key's error in the node's words, by the error's field (the message text is not read)
    error = ConfigError("any text at all", field="rewards.judge_path")
    assert "connect a PaCo Judge Loader to the judge input" in training.in_the_nodes_words(error)
    assert training.in_the_nodes_words(ConfigError("kept as it is", field="optim.lr")) == "kept as it is"


def test_edit_blocks_become_edit_rows_for_an_edit_preset(tmp_path):
    images = tmp_path / "input"
    images.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "rl" / "images" / "cube.png", images / "cube.png")
    config = build_training_config(
        TrainingRequest(
            preset="edit-kontext",
            training_prompts="cube.png\nmake it blue\n",
            image_root=images,
            prompts_folder=tmp_path,
        )
    )
    assert config["data"]["image_root"] == str(images)
    rows = [json.loads(line) for line in open(config["data"]["train_file"], encoding="utf-8")]
    assert rows == [{"image": "cube.png", "instruction": "make it blue"}]
