"""The training config schema, presets and the `paco train` options that need no model."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from paco_core.cli import main
from paco_core.config import (
    apply_overrides,
    check_override_keys,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from paco_core.errors import ConfigError
from paco_core.rl.config import (
    AdvantageConfig,
    DataConfig,
    EmaConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    RewardConfig,
    RewardSpec,
    SamplingConfig,
    TrainConfig,
    resume_config_changes,
)

CONFIG_CLASSES = [ModelConfig, LoraConfig, SamplingConfig, DataConfig, RewardConfig, AdvantageConfig, OptimConfig,
                  EmaConfig, TrainConfig]  # fmt: skip


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_round_trips_through_dict_json_and_pickle(cls, tmp_path):
    config = cls()
    assert config_from_dict(cls, config_to_dict(config)) == config
    save_config(config, tmp_path / "c.json")
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["paco_version"] and list(saved) == sorted(saved)
    assert load_config(cls, tmp_path / "c.json") == config
    assert pickle.loads(pickle.dumps(config)) == config


def test_nested_sections_accept_plain_dicts_and_lists_become_tuples():
    config = config_from_dict(
        TrainConfig,
        {
            "sampling": {"noise_steps": [1, 2], "num_steps": 4},
            "rewards": {"rewards": [{"name": "edit", "weight": 2}]},
        },
    )
    assert config.sampling.noise_steps == (1, 2)
    assert config.rewards.rewards == (RewardSpec("edit", 2),)
    assert config.lora.target_modules[-1] == "ff_context.net.2"


def test_unknown_keys_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        config = config_from_dict(TrainConfig, {"optim": {"lr": 1e-3, "new_knob": 3}, "future": 1})
    assert config.optim.lr == 1e-3
    assert "new_knob" in caplog.text and "future" in caplog.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sampling": {"num_steps": 4, "noise_steps": [4]}}, r"noise_steps.*outside 0\.\.3"),
        ({"sampling": {"noise_steps": []}}, "noise_steps` is empty"),
        ({"sampling": {"noise_steps": [1, 1]}}, "repeats an index"),
        ({"sampling": {"group_size": 1, "batch_size": 1}}, "group_size` should be at least 2"),
        ({"sampling": {"group_size": 6, "batch_size": 4}}, "multiple of `sampling.batch_size`"),
        ({"sampling": {"train_resolution": 500}}, "multiple of 16"),
        ({"sampling": {"noise_level": 0}}, "noise_level` should be positive"),
        ({"optim": {"lr": -1}}, r"optim\.lr` should be positive, got -1"),
        ({"optim": {"betas": [0.9, 1.5]}}, "betas"),
        ({"optim": {"mixed_precision": "fp8"}}, "mixed_precision` should be one of"),
        ({"model": {"kind": "sdxl"}}, "model.kind` should be one of"),
        ({"model": {"device": "tpu"}}, "model.device"),
        ({"rewards": {"rewards": []}}, "rewards` is empty"),
        ({"rewards": {"rewards": [{"name": "bogus"}]}}, "neither a built-in"),
        ({"rewards": {"rewards": [{"name": "edit", "weight": -1}]}}, "weight` should be zero or positive"),
        ({"rewards": {"rewards": [{"name": "edit"}, {"name": "edit"}]}}, "names a reward twice"),
        ({"rewards": {"aggregation": "max"}}, "aggregation` should be one of"),
        ({"rewards": {"max_invalid_share": 2}}, "max_invalid_share` should be between"),
        ({"ema": {"max_decay": 1.5}}, "max_decay"),
        ({"ema": {"cadence": "hourly"}}, "ema.cadence` should be one of"),
        ({"optim": {"kl_form": "reverse"}}, "optim.kl_form` should be one of"),
        ({"optim": {"optimizer_steps_per_iteration": -1}}, "optimizer_steps_per_iteration"),
        ({"sampling": {"eval_num_steps": -2}}, "eval_num_steps"),
        ({"rewards": {"log_tame_rewards": ["pickscore_v2"]}}, r"log_tame_rewards` names \['pickscore_v2'\]"),
        ({"num_iterations": 0}, "num_iterations` should be positive"),
        ({"seed": -3}, "seed` should be a non-negative integer"),
        ({"output_dir": ""}, "output_dir` is empty"),
        ({"optim": "fast"}, "`optim` should be an object"),
    ],
)
def test_bad_values_raise_config_error(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(TrainConfig, data)


def test_check_ready_names_missing_paths(tmp_path):
    with pytest.raises(ConfigError, match="model.path` is empty"):
        TrainConfig().check_ready()
    config = config_from_dict(
        TrainConfig, {"model": {"path": "x"}, "data": {"train_file": str(tmp_path / "no.jsonl")}}
    )
    with pytest.raises(ConfigError, match="does not exist"):
        config.check_ready()
    (tmp_path / "p.jsonl").write_text("{}\n")
    config = config_from_dict(
        TrainConfig, {"model": {"path": "x"}, "data": {"train_file": str(tmp_path / "p.jsonl")}}
    )
    with pytest.raises(ConfigError, match="need the judge"):
        config.check_ready()
    ready = {"model": {"path": "x"}, "data": {"train_file": str(tmp_path / "p.jsonl")}}
    clip_only = config_from_dict(
        TrainConfig,
        {
            **ready,
            "rewards": {"rewards": [{"name": "clip_t"}, {"name": "pickscore"}], "clip_path": "models/clip"},
        },
    )
    with pytest.raises(
        ConfigError, match="pickscore needs the PickScore model: set `rewards.pickscore_path`"
    ):
        clip_only.check_ready()  # no silent fallback to the CLIP model
    pick_only = config_from_dict(
        TrainConfig,
        {**ready, "rewards": {"rewards": [{"name": "clip_t"}], "pickscore_path": "models/pickscore"}},
    )
    with pytest.raises(ConfigError, match="clip_t needs a CLIP model: set `rewards.clip_path`"):
        pick_only.check_ready()


def test_overrides_parse_json_values():
    data = apply_overrides({}, ["optim.lr=0.001", "sampling.noise_steps=[1,2]", "output_dir=runs/a"])
    assert data == {"optim": {"lr": 0.001}, "sampling": {"noise_steps": [1, 2]}, "output_dir": "runs/a"}
    with pytest.raises(ConfigError, match="should look like"):
        apply_overrides({}, ["optim.lr"])


def test_override_keys_must_exist_and_a_typo_names_the_closest():
    check_override_keys(TrainConfig, ["optim.lr=1", "optim={}", "rewards.rewards=[]", "seed=3", "no-equals"])
    with pytest.raises(
        ConfigError,
        match=r"--set sampling.grup_size: no such config key; did you mean `sampling.group_size`\?",
    ):
        check_override_keys(TrainConfig, ["seed=1", "sampling.grup_size=4"])
    with pytest.raises(ConfigError, match=r"--set zzz: no such config key \(`paco train --describe-config`"):
        check_override_keys(TrainConfig, ["zzz=1"])
    with pytest.raises(ConfigError, match="no such config key"):
        check_override_keys(TrainConfig, ["optim.lr.x=1"])  # below a leaf


def test_resume_config_changes_ignore_the_keys_that_may_change():
    base = {"model": {"path": "m"}, "data": {"train_file": "t.jsonl"}, "optim": {"lr": 0.01}}
    saved = config_to_dict(config_from_dict(TrainConfig, base))
    saved["paco_version"] = "0.0.1"
    same = config_from_dict(
        TrainConfig,
        {
            **base,
            "num_iterations": 999,
            "output_dir": "elsewhere",
            "model": {"path": "m", "device": "cpu"},
            "eval_every": 3,
        },
    )
    assert resume_config_changes(saved, same) == []
    changed = config_from_dict(
        TrainConfig, {**base, "optim": {"lr": 0.02}, "seed": 1, "rewards": {"rewards": [{"name": "clip_t"}]}}
    )
    assert [key for key, _, _ in resume_config_changes(saved, changed)] == [
        "optim.lr",
        "rewards.rewards",
        "seed",
    ]
    assert resume_config_changes(saved, changed)[0] == ("optim.lr", 0.01, 0.02)
    # keys only one side knows (renamed or added by another version) are not compared
    older = {**saved, "optim": {**saved["optim"], "old_option": 1}}
    del older["model"]["dtype"]
    assert resume_config_changes(older, same) == []


def test_the_keys_that_may_change_on_resume_exist_and_are_documented():
    from pathlib import Path

    from paco_core.config import describe_fields
    from paco_core.rl.config import RESUME_MAY_CHANGE

    keys = {name for name, _kind, _default, _text in describe_fields(TrainConfig)}
    assert set(RESUME_MAY_CHANGE) <= keys
    page = (Path(__file__).parent.parent / "docs" / "runs.md").read_text()
    table = page.split("### What may change on resume")[1].split("###")[0]
    assert {key for key in RESUME_MAY_CHANGE if f"`{key}`" not in table} == set()


def test_print_config_of_a_preset_with_overrides(capsys):
    assert main(["train", "--preset", "edit-qwen", "--set", "optim.lr=1e-5", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["kind"] == "qwen-image-edit"
    assert printed["optim"]["lr"] == 1e-5
    assert printed["sampling"]["noise_steps"] == [1, 2, 3, 4]


def test_config_file_is_merged_over_the_preset(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"sampling": {"group_size": 8}, "num_iterations": 5}))
    assert main(["train", "--preset", "t2is-flux", "--config", str(path), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sampling"]["group_size"] == 8 and printed["sampling"]["num_steps"] == 10


def test_train_command_reports_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"optim": {"lr": 0}}))
    assert main(["train", "--config", str(path)]) == 1
    assert "optim.lr` should be positive" in capsys.readouterr().err
    assert main(["train"]) == 1
    assert "give --config" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["train", "--config", str(path)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    path.write_text("[1, 2]")
    assert main(["train", "--config", str(path)]) == 1
    assert "should hold a JSON object, got list" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 1
    assert "missing.json' does not exist" in capsys.readouterr().err


def test_describe_config_lists_every_key(capsys):
    assert main(["train", "--describe-config"]) == 0
    out = capsys.readouterr().out
    for key in ("sampling.noise_steps", "rewards.aggregation", "optim.kl_beta", "ema.update_every", "seed"):
        assert key in out


@pytest.mark.parametrize("preset", ["t2is-flux", "edit-kontext", "edit-qwen"])
def test_printed_config_loads_back_with_config(preset, tmp_path, capsys):
    assert main(["train", "--preset", preset, "--print-config"]) == 0
    printed = capsys.readouterr().out
    path = tmp_path / "run.json"
    path.write_text(printed)
    assert main(["train", "--config", str(path), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert config_to_dict(config_from_dict(TrainConfig, json.loads(printed))) == json.loads(printed)
