"""`paco pool` and `paco guarded-chain`: the real argument parser and commands, in-process, on
the tiny judge and the tiny Kontext model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from paco_core.cli import main
from paco_core.consistency.pool import assemble_from_pool
from paco_core.images import split_grid
from paco_core.reward import open_judge

THEME = "a red fox explorer"


def write_grids(folder, count: int, size=(64, 32), seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"grid_{index + 1}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_pool_writes_the_assembled_set_and_prints_the_core_result(tiny_models, tmp_path, capsys):
    grids = write_grids(tmp_path, 3)
    out = tmp_path / "pool"
    argv = ["pool", "--judge", str(tiny_models["judge"]), "--theme", THEME, "--layout", "2x2", *grids]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    candidates = [split_grid(Image.open(path).convert("RGB"), "2x2") for path in grids]
    expected = assemble_from_pool(open_judge(tiny_models["judge"]), candidates, THEME)
    assert printed["choice"] == list(expected.choice)
    assert printed["score"] == pytest.approx(expected.score, abs=1e-6)
    assert printed["num_questions"] == 54 and printed["search"] == "exact"
    assert Image.open(out / "grid.png").size == (64, 32)
    for name in ("panel_1.png", "panel_4.png", "heatmap.png", "best_whole_heatmap.png", "choice.png"):
        assert (out / name).is_file()
    assert json.loads((out / "result.json").read_text())["choice"] == list(expected.choice)
    for panel, candidate in enumerate(expected.choice, start=1):
        saved = np.asarray(Image.open(out / f"panel_{panel}.png"))
        assert np.array_equal(saved, np.asarray(candidates[candidate][panel - 1]))


@pytest.mark.parametrize(
    ("make_images", "shape", "message"),
    [
        (
            lambda folder: write_grids(folder, 1) + write_grids(folder / "b", 1, size=(32, 32)),
            ["--layout", "2x2"],
            "candidate set 2, panel 1 is 16x16 but set 1's panels are 32x16",
        ),
        (
            lambda folder: write_grids(folder, 5, size=(16, 16)),
            ["--panels-per-set", "2"],
            "does not divide the 5",
        ),
    ],
)
def test_pool_bad_inputs_are_one_line_errors_naming_the_input(
    tiny_models, tmp_path, capsys, make_images, shape, message
):
    (tmp_path / "b").mkdir()
    argv = ["pool", "--judge", str(tiny_models["judge"]), *shape, *make_images(tmp_path)]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("paco pool: error:") and message in error


def chain_argv(tiny_models, tmp_path, *extra) -> list[str]:
    source = tmp_path / "origin.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(source)
    argv = [
        "guarded-chain",
        "--model",
        str(tiny_models["flux-kontext"]),
        "--judge",
        str(tiny_models["judge"]),
    ]
    argv += [
        "--image",
        str(source),
        "--steps",
        "1",
        "--instruction",
        "add a hat",
        "--instruction",
        "make it night",
    ]
    return [*argv, "--out", str(tmp_path / "out"), *extra]


def test_guarded_chain_writes_each_step_and_the_per_step_scores(tiny_models, tmp_path, capsys):
    assert main(chain_argv(tiny_models, tmp_path, "--threshold", "1.0", "--tries", "2")) == 0
    report = capsys.readouterr().out
    out = tmp_path / "out"
    assert [Image.open(out / f"edit_{i}.png").size for i in (1, 2)] == [(40, 24), (40, 24)]
    assert (out / "step_scores.png").is_file()
    result = json.loads((out / "result.json").read_text())
    assert [len(step["tries"]) for step in result["steps"]] == [2, 4]  # step 2: 2 tries + 2 re-anchored
    assert [item["source"] for item in result["steps"][1]["tries"]] == [
        "previous",
        "previous",
        "origin",
        "origin",
    ]
    for number, step in enumerate(result["steps"], start=1):
        kept = step["tries"][step["kept"]]
        assert f"vs origin {kept['origin']['consistency']:.3f}" in report and f"step {number} " in report


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "1.5"], "`threshold` should be from 0 to 1"),
        (["--tries", "0"], "`tries` should be a whole number from 1 to 16, got 0"),
    ],
)
def test_guarded_chain_bad_options_fail_before_any_model_loads(tiny_models, tmp_path, capsys, extra, message):
    assert main(chain_argv(tiny_models, tmp_path, *extra)) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("paco guarded-chain: error:") and message in error
