"""`paco generate` and `paco edit`: the real argument parser and commands, in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from paco_core.cli import main


def test_generate_writes_grid_panels_and_settings(tiny_models, tmp_path):
    out = tmp_path / "set"
    argv = ["generate", "--model", str(tiny_models["flux"]), "--theme", "a red fox", "--layout", "1x2"]
    argv += [
        "--panel",
        "running",
        "--panel",
        "sleeping",
        "--panel-size",
        "32x16",
        "--steps",
        "2",
        "--seed",
        "3",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    assert Image.open(out / "grid.png").size == (64, 16)
    assert [Image.open(out / f"panel_{i}.png").size for i in (1, 2)] == [(32, 16), (32, 16)]
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["seed"], settings["layout"], settings["panels"]) == (3, "1x2", ["running", "sleeping"])
    assert main([*argv, "--num-sets", "2", "--out", str(tmp_path / "two")]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "grid.png")),
        np.asarray(Image.open(tmp_path / "two" / "set_1" / "grid.png")),
    )
    assert json.loads((tmp_path / "two" / "set_2" / "settings.json").read_text())["seed"] == 4


def test_edit_chain_writes_one_image_per_instruction(tiny_models, tmp_path):
    source = tmp_path / "fox.png"
    Image.new("RGB", (40, 24), (200, 80, 20)).save(source)
    argv = ["edit", "--model", str(tiny_models["flux-kontext"]), "--image", str(source), "--steps", "1"]
    argv += ["--instruction", "add a hat", "--instruction", "make it night", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    assert [Image.open(tmp_path / "out" / f"edit_{i}.png").size for i in (1, 2)] == [(40, 24), (40, 24)]
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert [step["instruction"] for step in settings["steps"]] == ["add a hat", "make it night"]


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--panel-size", "30"], "`panel_width` should be a multiple of 16"),
        (["--panel-size", "big"], "--panel-size should be N or WxH"),
        (["--layout", "2x2"], "layout 2x2 has 4 panels, got 1 panel prompts"),
        (["--lora", "missing.safetensors:0.5"], "LoRA missing.safetensors does not exist"),
    ],
)
def test_generate_reports_bad_input_without_a_traceback(tiny_models, tmp_path, capsys, argv_tail, message):
    argv = [
        "generate",
        "--model",
        str(tiny_models["flux"]),
        "--theme",
        "fox",
        "--panel",
        "a",
        "--layout",
        "1x1",
    ]
    assert main([*argv, "--steps", "1", "--out", str(tmp_path), *argv_tail]) == 1
    assert message in capsys.readouterr().err


def test_edit_refuses_a_text_to_image_model(tiny_models, tmp_path, capsys):
    source = tmp_path / "fox.png"
    Image.new("RGB", (16, 16)).save(source)
    argv = ["edit", "--model", str(tiny_models["flux"]), "--image", str(source), "--instruction", "x"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    assert "cannot edit an image with a flux pipeline" in capsys.readouterr().err
