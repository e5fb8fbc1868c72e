"""The grid nodes run through the ComfyUI stand-in (tests/pack_loader.py)."""

from __future__ import annotations

import importlib

import pytest
import torch
from pack_loader import NodeInputError, load_pack, run_node, widget_defaults

from paco_core.errors import InputError
from paco_core.prompts import parse_grid_prompt

grid = importlib.import_module(f"{load_pack().__name__}.nodes.grid")


def test_grid_prompt_builds_a_prompt_from_its_defaults():
    out = run_node(grid.PaCoGridPrompt, **widget_defaults(grid.PaCoGridPrompt))
    prompt, num_panels, judge_theme, layout = out.args
    parsed = parse_grid_prompt(prompt)
    assert prompt.startswith("FOUR-PANEL Images with a 2x2 grid layout depicting a young explorer")
    assert num_panels == 4 == len(parsed.panel_prompts)
    assert judge_theme == prompt.split("[TOP]-[LEFT]:")[0].strip()
    assert layout == "2x2"


def test_grid_prompt_outputs_the_judge_theme_by_the_shared_rule():
    from paco_core.prompts import judge_theme

    inputs = {**widget_defaults(grid.PaCoGridPrompt), "theme": "a fox.", "shared_description": "In ink."}
    assert inputs["judge_theme_source"] == "preamble"
    for source, expected in (
        ("preamble", "FOUR-PANEL Images with a 2x2 grid layout a fox.In ink."),
        ("theme", "a fox."),
    ):
        out = run_node(grid.PaCoGridPrompt, **{**inputs, "judge_theme_source": source})
        assert out[2] == expected == judge_theme(out[0], source=source, theme="a fox.")


def test_grid_prompt_takes_one_panel_per_non_empty_line():
    out = run_node(
        grid.PaCoGridPrompt,
        theme="a fox.",
        shared_description="",
        panel_prompts="\n  sits  \n\nruns\n\tsleeps\n",
        layout="1x3",
        judge_theme_source="preamble",
    )
    assert (
        out[0] == "THREE-PANEL Images with a 1x3 grid layout a fox. [LEFT]:sits [MIDDLE]:runs [RIGHT]:sleeps"
    )
    assert out[1] == 3


def test_grid_prompt_rejects_a_line_count_that_does_not_fit_the_layout():
    with pytest.raises(InputError, match="layout 2x3 has 6 panels, got 2 panel prompts"):
        run_node(
            grid.PaCoGridPrompt,
            theme="a fox.",
            shared_description="",
            panel_prompts="a\nb",
            layout="2x3",
            judge_theme_source="preamble",
        )


def test_split_then_compose_gives_the_grid_back():
    images = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    panels = run_node(grid.PaCoSplitGrid, image=images, layout="2x3")[0]
    assert panels.shape == (6, 32, 32, 3)
    assert torch.equal(panels[1], images[0, :32, 32:64])
    assert torch.equal(run_node(grid.PaCoComposeGrid, panels=panels, layout="2x3")[0], images)


def test_split_grid_node_reports_an_indivisible_size():
    with pytest.raises(InputError, match="the nearest size that splits is 63x63"):
        run_node(grid.PaCoSplitGrid, image=torch.zeros(1, 64, 64, 3), layout="3x3")


def test_compose_grid_node_reports_a_wrong_panel_count():
    with pytest.raises(InputError, match="layout 1x5 needs a multiple of 5 panels, got 4"):
        run_node(grid.PaCoComposeGrid, panels=torch.zeros(4, 8, 8, 3), layout="1x5")


def test_layout_outside_the_menu_is_rejected_before_execute():
    with pytest.raises(NodeInputError, match=r"'9x9' is not one of"):
        run_node(grid.PaCoSplitGrid, image=torch.zeros(1, 9, 9, 3), layout="9x9")


def test_every_menu_layout_splits_a_matching_image():
    for layout in grid.layout_input().options:
        rows, cols = (int(n) for n in layout.split("x"))
        panels = run_node(grid.PaCoSplitGrid, image=torch.zeros(1, 4 * rows, 4 * cols, 3), layout=layout)[0]
        assert panels.shape == (rows * cols, 4, 4, 3), layout
