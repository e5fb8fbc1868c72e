"""The pool and guarded-chain nodes, run as ComfyUI runs them (through the ComfyUI test double)
on the tiny judge and the tiny Kontext model."""

from __future__ import annotations

import importlib
import json

import pytest
import torch
from pack_loader import load_pack, reset_comfy_stub, run_node, widget_defaults
from test_generate_nodes import EDIT_OPTIONS

from paco_core.consistency.pool import assemble_from_pool
from paco_core.errors import InputError
from paco_core.images import pil_to_tensor, split_grid, tensor_to_pil
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge

nodes = importlib.import_module(f"{load_pack().__name__}.nodes.consistency_pool")
THEME = "a red fox explorer"


@pytest.fixture()
def comfy(tmp_path):
    reset_comfy_stub(tmp_path)
    import comfy.model_management as mm
    import comfy.utils

    yield {"mm": mm, "utils": comfy.utils}
    mm.stub_reset()


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], batch_size=4)


@pytest.fixture(scope="module")
def kontext(tiny_models):
    return load_pipeline(tiny_models["flux-kontext"])


def grids(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 32, 64, 3, generator=torch.Generator().manual_seed(seed))


def pool_inputs(judge, **changes) -> dict:
    node = nodes.PaCoPoolAssemble
    return {
        **widget_defaults(node),
        "judge": judge,
        "images": grids(3),
        "theme": THEME,
        "layout": "2x2",
        **changes,
    }


def test_the_pool_node_assembles_the_core_result_with_pictures_and_a_report(comfy, judge):
    inputs = pool_inputs(judge)
    out = run_node(nodes.PaCoPoolAssemble, hidden={"unique_id": "4"}, **inputs)
    grid, panels, best_whole, heatmaps, picture, score, choice, report = out.args
    candidates = [split_grid(image, "2x2") for image in tensor_to_pil(inputs["images"])]
    expected = assemble_from_pool(judge, candidates, THEME)
    assert json.loads(choice) == [candidate + 1 for candidate in expected.choice]
    assert score == pytest.approx(expected.score)
    assert tuple(grid.shape) == (1, 32, 64, 3) and tuple(panels.shape) == (4, 16, 32, 3)
    assert tuple(best_whole.shape) == (1, 32, 64, 3)
    assert torch.equal(panels, pil_to_tensor(expected.panels))
    assert heatmaps.shape[0] == 2 and picture.shape[0] == 1
    assert "assembled set consistency" in report and "time and memory" in report
    updates = [(u.node_id, u.value, u.total) for u in comfy["utils"].PROGRESS_UPDATES]
    assert updates[-1] == ("4", 3 * 3 * 6, 3 * 3 * 6)  # K^2 * N(N-1)/2 questions


def test_the_pool_node_takes_panels_in_a_batch_and_refuses_a_batch_that_does_not_split(comfy, judge):
    panels = torch.rand(6, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    out = run_node(
        nodes.PaCoPoolAssemble, **pool_inputs(judge, images=panels, layout="batch", panels_per_set=3)
    )
    assert tuple(out.args[0].shape) == (1, 16, 48, 3)  # a row of the 3 assembled panels
    with pytest.raises(InputError, match="does not split into sets of 4 panels"):
        run_node(
            nodes.PaCoPoolAssemble, **pool_inputs(judge, images=panels, layout="batch", panels_per_set=4)
        )


def test_comfy_cancel_stops_the_pool(comfy, judge):
    comfy["mm"].interrupt_current_processing()
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run_node(nodes.PaCoPoolAssemble, **pool_inputs(judge))


def chain_inputs(kontext, judge, **changes) -> dict:
    image = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(2))
    values = {
        **widget_defaults(nodes.PaCoGuardedEditChain),
        "pipeline": kontext,
        "judge": judge,
        "image": image,
        "instructions": "make it winter\nmake it night",
        **EDIT_OPTIONS,
    }
    return {**values, **changes}


def test_the_guarded_chain_node_reports_each_step_against_the_origin(comfy, kontext, judge):
    inputs = chain_inputs(kontext, judge, threshold=1.0, tries_per_step=2, reanchor=True)
    out = run_node(nodes.PaCoGuardedEditChain, hidden={"unique_id": "9"}, **inputs)
    images, table, origin_scores, report = out.args
    assert tuple(images.shape) == (3, 32, 48, 3)  # origin + 2 steps, the origin's size
    assert torch.equal(images[:1], pil_to_tensor(tensor_to_pil(inputs["image"])))
    scores = json.loads(origin_scores)
    assert len(scores) == 2 and all(0 <= score <= 1 for score in scores)
    for number, score in enumerate(scores, start=1):
        assert f"step {number} " in report and f"vs origin {score:.3f}" in report
    assert "2 of 2" in report and "of 4" in report  # step 2: two tries, then two re-anchored
    assert table.shape[0] == 1
    updates = [(u.node_id, u.value, u.total) for u in comfy["utils"].PROGRESS_UPDATES]
    assert updates[-1][1] == updates[-1][2]


def test_the_guarded_chain_node_takes_one_image_only(comfy, kontext, judge):
    two = torch.rand(2, 32, 48, 3)
    with pytest.raises(InputError, match="takes one original image, got a batch of 2"):
        run_node(nodes.PaCoGuardedEditChain, **chain_inputs(kontext, judge, image=two))


def test_comfy_cancel_stops_the_guarded_chain(comfy, kontext, judge):
    comfy["mm"].interrupt_current_processing()
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run_node(nodes.PaCoGuardedEditChain, **chain_inputs(kontext, judge))
