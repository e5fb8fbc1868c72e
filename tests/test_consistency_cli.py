"""`paco reference-set` and `paco repair`: the real argument parser and commands, in-process."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from paco_core.cli import main


def test_reference_set_writes_the_grid_cells_heatmap_and_report(tiny_models, tmp_path, capsys):
    reference = tmp_path / "mia.png"
    Image.fromarray((np.random.default_rng(0).random((50, 30, 4)) * 255).astype(np.uint8), "RGBA").save(
        reference
    )
    out = tmp_path / "set"
    argv = ["reference-set", "--model", str(tiny_models["flux"]), "--judge", str(tiny_models["judge"])]
    argv += [
        "--reference",
        str(reference),
        "--theme",
        "Mia, a courier.",
        "--layout",
        "1x3",
        "--panel-size",
        "32",
    ]
    argv += ["--panel", "she runs", "--panel", "she eats", "--steps", "2", "--reference-cell", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    assert Image.open(out / "grid.png").size == (96, 32)
    from paco_core.consistency.cells import fit_reference
    from paco_core.images import open_image_file

    fitted = fit_reference(open_image_file(reference), 32, 32)  # read as the command reads it
    np.testing.assert_array_equal(np.asarray(Image.open(out / "cell_2.png")), np.asarray(fitted))
    result = json.loads((out / "result.json").read_text())
    assert result["reference_cells"] == [2] and [row["cell"] for row in result["panels"]] == [1, 3]
    assert "keep the identity" in (out / "report.txt").read_text()
    assert Image.open(out / "heatmap.png").size[0] > 0
    assert "panel #1: against the reference" in capsys.readouterr().out


def test_repair_writes_before_after_heatmaps_and_the_round_log(tiny_models, tmp_path, capsys):
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import load_pipeline

    request = SetRequest(
        theme="a fox.", panels=("a", "b", "c", "d"), panel_width=32, panel_height=32, steps=2
    )
    [made] = generate_sets(load_pipeline(tiny_models["flux"]), request)
    made.grid.save(tmp_path / "grid.png")
    out = tmp_path / "fixed"
    argv = [
        "repair",
        "--model",
        str(tiny_models["flux"]),
        "--judge",
        str(tiny_models["judge"]),
        "--layout",
        "2x2",
    ]
    argv += [
        "--theme",
        "a fox.",
        "--target",
        "0.99",
        "--tries",
        "2",
        "--rounds",
        "2",
        "--steps",
        "2",
        "--lock",
        "1",
    ]
    assert main([*argv, str(tmp_path / "grid.png"), "--out", str(out)]) == 0
    log = json.loads((out / "repair.json").read_text())
    assert [r["number"] for r in log["rounds"]] == [1, 2] and all(r["panel"] != 1 for r in log["rounds"])
    assert log["score_after"]["score"] >= log["score_before"]["score"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "panel_1.png")), np.asarray(made.panels[0]))
    for name in ("heatmap_before.png", "heatmap_after.png", "grid.png", "report.txt"):
        assert (out / name).is_file()


def test_bad_inputs_are_one_line_errors(tiny_models, tmp_path, capsys):
    base = [
        "--model",
        str(tiny_models["flux"]),
        "--judge",
        str(tiny_models["judge"]),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(["repair", *base, "--layout", "2x2", "--theme", "t", "--target", "1.5", "x.png"]) == 1
    assert capsys.readouterr().err.strip() == (
        "paco repair: error: `target_score` should be from 0 to 1 (a judge probability), got 1.5."
    )
    assert main(["repair", *base, "--layout", "2x2", "--theme", "t", "--tries", "0", "x.png"]) == 1
    assert "`tries_per_round` should be a whole number >= 1, got 0." in capsys.readouterr().err
    assert main(["reference-set", *base, "--theme", "t", "--panel", "a"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--reference: give at least one reference image (repeat --reference for several).")
    )
