"""The consistency nodes run as ComfyUI runs them (through the ComfyUI test double): PaCo Set of
Your Character and PaCo Repair Odd Panel, with progress, cancel and readable reports."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from pack_loader import load_pack, reset_comfy_stub, run_node, widget_defaults

from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge


@pytest.fixture(scope="module")
def consistency():
    pack = load_pack()
    return importlib.import_module(f"{pack.__name__}.nodes.consistency")


@pytest.fixture()
def comfy(tmp_path, consistency):
    reset_comfy_stub(tmp_path)
    import comfy.model_management as mm
    import comfy.utils

    yield {"mm": mm, "utils": comfy.utils, "root": tmp_path}
    comfy.utils.stub_reset()
    mm.stub_reset()


@pytest.fixture(scope="module")
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"])


def reference_tensor(height=40, width=24):
    import torch

    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(0))


def reference_inputs(node, **changes):
    values = {
        **widget_defaults(node),
        "theme": "Mia, a red-haired courier.",
        "panels": "she runs\nshe eats\nshe sleeps",
        "panel_width": 32,
        "panel_height": 32,
        "steps": 2,
    }
    return {**values, **changes}


def test_every_input_and_output_is_described(consistency):
    for node in consistency.NODES:
        schema = node.GET_SCHEMA()
        assert schema.node_id.startswith("PaCo") and schema.category == "PaCo/Consistency"
        assert all(item.tooltip for item in schema.inputs) and all(item.tooltip for item in schema.outputs)


def test_set_of_your_character_keeps_the_reference_and_reports_identity(consistency, comfy, flux, judge):
    from paco_core.consistency.cells import fit_reference
    from paco_core.images import tensor_to_pil

    node = consistency.PaCoReferenceSet
    references = reference_tensor()
    output = run_node(
        node,
        hidden={"unique_id": "4"},
        pipeline=flux,
        judge=judge,
        references=references,
        **reference_inputs(node),
    )
    grid, cells, heatmap, identity, report = output.args
    assert tuple(grid.shape) == (1, 64, 64, 3) and tuple(cells.shape) == (4, 32, 32, 3)
    fitted = np.asarray(fit_reference(tensor_to_pil(references)[0], 32, 32))
    np.testing.assert_array_equal(np.asarray(tensor_to_pil(cells)[0]), fitted)
    rows = json.loads(identity)
    assert [row["cell"] for row in rows] == [2, 3, 4]
    assert all(isinstance(row["keeps_identity"], bool) for row in rows)
    assert "keep the identity (score >= 0.5)" in report and "peak memory" in report
    assert heatmap.shape[0] == 1
    updates = [(u.node_id, u.value, u.total) for u in comfy["utils"].PROGRESS_UPDATES]
    assert updates[-1] == ("4", 2, 2)


def test_set_of_your_character_bad_inputs_are_one_line(consistency, comfy, flux, judge):
    from paco_core.errors import InputError

    node = consistency.PaCoReferenceSet
    with pytest.raises(
        InputError, match=r"^`panels`: layout 2x2 has 4 cells; with 1 reference\(s\) it needs 3"
    ):
        run_node(
            node,
            pipeline=flux,
            judge=judge,
            references=reference_tensor(),
            **reference_inputs(node, panels="only one"),
        )


def repair_inputs(node, **changes):
    values = {
        **widget_defaults(node),
        "theme": "a red fox explorer.",
        "panel_prompts": "packs a map\ncrosses a bridge\nclimbs a hill\nsleeps in a tent",
        "target_score": 0.99,
        "tries_per_round": 2,
        "max_rounds": 2,
        "steps": 2,
        "seed": 5,
    }
    return {**values, **changes}


@pytest.fixture(scope="module")
def grid(flux):
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.images import pil_to_tensor

    request = SetRequest(
        theme="a fox.", panels=("a", "b", "c", "d"), panel_width=32, panel_height=32, steps=2
    )
    return pil_to_tensor(generate_sets(flux, request)[0].grid)


def test_repair_node_outputs_before_after_heatmaps_and_a_round_log(consistency, comfy, flux, judge, grid):
    from paco_core.images import split_grid, tensor_to_pil

    node = consistency.PaCoRepairSet
    output = run_node(
        node, hidden={"unique_id": "9"}, pipeline=flux, judge=judge, images=grid, **repair_inputs(node)
    )
    new_grid, panels, before_map, after_map, before, after, report, log = output.args
    assert after >= before and tuple(panels.shape) == (4, 32, 32, 3)
    assert before_map.shape == after_map.shape
    rounds = json.loads(log)["rounds"]
    assert [r["number"] for r in rounds] == [1, 2] and all(len(r["try_scores"]) == 2 for r in rounds)
    assert report.splitlines()[1].startswith(f"round 1: panel #{rounds[0]['panel']} ")
    changed = set(json.loads(log)["changed_panels"])
    old, new = split_grid(tensor_to_pil(grid)[0], "2x2"), tensor_to_pil(panels)
    for number in {1, 2, 3, 4} - changed:
        np.testing.assert_array_equal(np.asarray(old[number - 1]), np.asarray(new[number - 1]))
    assert [(u.node_id, u.total) for u in comfy["utils"].PROGRESS_UPDATES][-1] == ("9", 2 * 2 * 2)


def test_cancel_mid_repair_keeps_the_best_set_so_far_in_the_output_folder(
    consistency, comfy, flux, judge, grid
):
    from server import PromptServer

    node = consistency.PaCoRepairSet
    seen = []

    def cancel_in_round_two(value, total, preview, node_id=None):
        seen.append(value)
        if value > 4:
            comfy["mm"].interrupt_current_processing()
        comfy["mm"].throw_exception_if_processing_interrupted()

    comfy["utils"].set_progress_bar_global_hook(cancel_in_round_two)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run_node(
            node, hidden={"unique_id": "3"}, pipeline=flux, judge=judge, images=grid, **repair_inputs(node)
        )
    kept = sorted((comfy["root"] / "output" / consistency.CANCELLED_FOLDER).glob("*"))
    assert [path.name.split("_")[-1] for path in kept] == ["grid.png", "report.txt"]
    assert "cancelled: the best set so far is kept" in kept[1].read_text()
    texts = [text for node_id, text in PromptServer.instance.stub_progress_texts() if node_id == "3"]
    assert texts[-1].startswith("repair cancelled: best set so far kept in ")


def test_locked_panels_are_typed_from_one(consistency):
    from paco_core.errors import InputError

    assert consistency.cell_numbers("1, 4", "locked_panels") == (0, 3)
    assert consistency.cell_numbers("", "locked_panels") == ()
    with pytest.raises(InputError, match=r"^`locked_panels` should be panel numbers"):
        consistency.cell_numbers("first", "locked_panels")
