"""Bad inputs of the consistency tools: one-line InputErrors naming the input, raised before
any model runs."""

from __future__ import annotations

import pytest
from PIL import Image

from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
from paco_core.consistency.repair import RepairOptions, repair_set
from paco_core.errors import InputError
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge


def panels(count: int, size=(32, 32)) -> list:
    return [Image.new("RGB", size, (10 * i, 0, 0)) for i in range(count)]


@pytest.fixture(scope="module")
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"])


@pytest.fixture()
def no_model_runs(flux):
    calls = []
    handle = flux.pipe.transformer.register_forward_hook(lambda *args: calls.append(1))
    yield
    handle.remove()
    assert calls == []


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"identity_threshold": 1.5}, r"^`identity_threshold` should be from 0 to 1"),
        ({"identity_threshold": float("nan")}, r"^`identity_threshold` should be a number from 0 to 1"),
        ({"reference_fit": "stretch"}, r"^`reference_fit` should be one of pad, crop"),
        ({"steps": 0}, r"^`steps` should be a whole number >= 1"),
        ({"panel_width": 30}, r"^`panel_width` should be a multiple of 16"),
        ({"theme": " "}, r"^`theme` is empty"),
        ({"judge_theme_source": "x"}, r"^`judge_theme_source` should be one of"),
    ],
)
def test_bad_reference_set_requests(changes, message):
    values = {"theme": "Mia.", "panels": ("a", "b", "c"), "panel_width": 32, "panel_height": 32}
    with pytest.raises(InputError, match=message) as error:
        ReferenceSetRequest(**{**values, **changes})
    one_line(error)


@pytest.mark.parametrize(
    ("references", "changes", "message"),
    [
        ([], {}, r"^`references`: a reference-anchored set needs at least one reference image, got none"),
        (
            panels(1),
            {"panels": ("a", "b")},
            r"^`panels`: layout 2x2 has 4 cells; with 1 reference\(s\) it needs 3",
        ),
        (panels(4), {"panels": ()}, r"^`panels`: layout 2x2 has 4 cells; with 4 reference\(s\) it needs 0"),
        (panels(1), {"reference_cells": (4,)}, r"^`reference_cells` should hold cell numbers from 1 to 4"),
        (
            panels(2),
            {"panels": ("a", "b"), "reference_cells": (1, 1)},
            r"^`reference_cells` names a cell twice",
        ),
        (
            panels(2),
            {"panels": ("a", "b"), "reference_cells": (1,)},
            r"^`reference_cells` names 1 cell\(s\) for 2",
        ),
        (["not an image"], {}, r"^reference 1 should be a PIL image, got str"),
    ],
)
def test_bad_reference_set_inputs(flux, judge, no_model_runs, references, changes, message):
    values = {"theme": "Mia.", "panels": ("a", "b", "c"), "panel_width": 32, "panel_height": 32, "steps": 1}
    request = ReferenceSetRequest(**{**values, **changes})
    with pytest.raises(InputError, match=message) as error:
        generate_reference_set(flux, judge, references, request)
    one_line(error)


def test_references_of_any_size_and_mode_are_accepted(flux, judge):
    odd = [Image.new("RGBA", (7, 90)), Image.new("L", (300, 5)), Image.new("P", (33, 33))]
    request = ReferenceSetRequest(theme="Mia.", panels=("a",), panel_width=32, panel_height=32, steps=1)
    result = generate_reference_set(flux, judge, odd, request)
    assert [image.size for image in result.cells] == [(32, 32)] * 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_score": 1.2}, r"^`target_score` should be from 0 to 1"),
        ({"target_score": -0.1}, r"^`target_score` should be from 0 to 1"),
        ({"tries_per_round": 0}, r"^`tries_per_round` should be a whole number >= 1, got 0"),
        ({"max_rounds": 0}, r"^`max_rounds` should be a whole number >= 1, got 0"),
        ({"max_rounds": 65}, r"^`max_rounds` should be at most 64"),
        ({"strength": 0}, r"^`strength` should be above 0 and at most 1"),
        ({"steps": 2, "strength": 0.3}, r"^`strength` 0.3 of 2 steps leaves no step to run"),
    ],
)
def test_bad_repair_options(changes, message):
    with pytest.raises(InputError, match=message) as error:
        RepairOptions(**changes)
    one_line(error)


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (panels(3), {}, r"^`panels`: layout 2x2 holds 4 panels, got 3"),
        (panels(3) + panels(1, (48, 48)), {}, r"^`panels` should all have one size, got 32x32, 48x48"),
        (
            panels(4, (30, 30)),
            {},
            r"^`panels` are 30x30; the models need panel sides that are multiples of 16",
        ),
        (
            panels(4),
            {"panel_prompts": ("a", "b")},
            r"^`panel_prompts`: give one prompt per panel \(4\), got 2",
        ),
        (panels(4), {"options": RepairOptions(locked=(0, 1, 2, 3))}, r"^`locked` locks all 4 panels"),
        (
            panels(4),
            {"options": RepairOptions(locked=(9,))},
            r"^`locked` should hold cell numbers from 1 to 4",
        ),
        (Image.new("RGB", (64, 64)), {}, r"^`panels` should be a list of panel images"),
    ],
)
def test_bad_repair_inputs(flux, judge, no_model_runs, images, kwargs, message):
    with pytest.raises(InputError, match=message) as error:
        repair_set(flux, judge, images, "a fox.", layout="2x2", **kwargs)
    one_line(error)


def test_repair_without_theme_or_prompts_is_refused(flux, judge, no_model_runs):
    with pytest.raises(InputError, match=r"^`theme` is empty and no `panel_prompts` were given"):
        repair_set(flux, judge, panels(4), "", layout="2x2")
