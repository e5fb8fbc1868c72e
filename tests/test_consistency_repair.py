"""Repair of the odd panel on the tiny models: only the weakest panel changes, the others stay
pixel-identical, the set score never goes down, tries run only while below the target, and a
cancel keeps the best set so far."""

from __future__ import annotations

import numpy as np
import pytest

from paco_core.callbacks import Hooks
from paco_core.consistency.repair import RepairOptions, repair_set
from paco_core.generate import SetRequest, generate_sets
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge
from paco_core.reward.scoring import score_set

THEME = "a red fox explorer."
PROMPTS = ("a fox packs a map", "a fox crosses a bridge", "a fox climbs a hill", "a fox sleeps in a tent")


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def options(**changes) -> RepairOptions:
    values = {"target_score": 0.99, "tries_per_round": 2, "max_rounds": 3, "steps": 2, "seed": 11}
    return RepairOptions(**{**values, **changes})


@pytest.fixture(scope="module")
def flux(tiny_models):
    return load_pipeline(tiny_models["flux"])


@pytest.fixture(scope="module")
def panels(flux):
    request = SetRequest(theme=THEME, panels=PROMPTS, layout="2x2", panel_width=32, panel_height=32, steps=2)
    return generate_sets(flux, request)[0].panels


@pytest.fixture()
def judge(tiny_models):
    return open_judge(tiny_models["judge"])  # a fresh score cache per test: pair counts start at 0


@pytest.fixture(scope="module")
def repaired(flux, panels, tiny_models):
    judge = open_judge(tiny_models["judge"])
    return repair_set(flux, judge, panels, THEME, layout="2x2", panel_prompts=PROMPTS, options=options())


def test_only_the_weakest_panel_changes_and_the_score_never_goes_down(repaired, panels, judge):
    result = repaired
    assert result.path == "grid" and len(result.rounds) == 3 and result.stop_reason == "rounds used up"
    assert result.score_after.score >= result.score_before.score
    changed = set()
    current = list(panels)
    for log in result.rounds:
        assert log.score_after >= log.score_before
        assert log.score_after == max(log.score_before, *log.try_scores)
        assert (log.kept_try is not None) == (max(log.try_scores) > log.score_before)
        assert log.seeds == [11 + (log.number - 1) * 2, 12 + (log.number - 1) * 2]
        if log.kept_try is not None:
            changed.add(log.panel)
    assert changed, "no round raised the score; pick another seed for this test"
    assert sorted(changed) == result.changed_panels
    for index, (before, after) in enumerate(zip(current, result.panels, strict=True)):
        if index in changed:
            assert np.abs(pixels(before) - pixels(after)).max() > 0
        else:
            np.testing.assert_array_equal(pixels(before), pixels(after))
    # the grid is the panels; the final score is the judge's score of the final panels
    assert result.grid.size == (64, 64)
    rescored = score_set(judge, result.panels, THEME)
    assert rescored.score == pytest.approx(result.score_after.score)


def test_each_round_regenerates_the_panel_with_the_lowest_mean(flux, panels, judge):
    result = repair_set(
        flux, judge, panels, THEME, layout="2x2", panel_prompts=PROMPTS, options=options(max_rounds=1)
    )
    [log] = result.rounds
    assert log.panel == result.score_before.odd_one_out
    assert log.panel_score == min(result.score_before.per_image)
    locked = repair_set(
        flux,
        judge,
        panels,
        THEME,
        layout="2x2",
        panel_prompts=PROMPTS,
        options=options(max_rounds=1, locked=(log.panel,)),
    )
    others = [i for i in range(4) if i != log.panel]
    assert locked.rounds[0].panel == min(others, key=lambda i: result.score_before.per_image[i])
    np.testing.assert_array_equal(pixels(locked.panels[log.panel]), pixels(panels[log.panel]))


def test_a_round_asks_the_judge_only_the_new_panels_pairs_and_runs_k_tries_of_steps(flux, panels, judge):
    result = repair_set(
        flux,
        judge,
        panels,
        THEME,
        layout="2x2",
        panel_prompts=PROMPTS,
        options=options(max_rounds=2, tries_per_round=3, steps=4, strength=0.5),
    )
    for log in result.rounds:
        assert log.judge_pairs == 3 * (4 - 1)
        assert log.generation_steps == 3 * 2  # 4 steps at strength 0.5 run 2


def test_no_try_runs_when_the_set_is_already_at_the_target(flux, panels, judge):
    forward_calls = []
    handle = flux.pipe.transformer.register_forward_hook(lambda *args: forward_calls.append(1))
    try:
        result = repair_set(flux, judge, panels, THEME, layout="2x2", options=options(target_score=0.0))
    finally:
        handle.remove()
    assert result.stop_reason == "already at target" and result.rounds == [] and forward_calls == []
    assert all(after is before for after, before in zip(result.panels, panels, strict=True))


def test_rounds_stop_once_the_target_is_reached(flux, panels, repaired, judge):
    first_gain = next(log for log in repaired.rounds if log.kept_try is not None)
    result = repair_set(
        flux,
        judge,
        panels,
        THEME,
        layout="2x2",
        panel_prompts=PROMPTS,
        options=options(target_score=first_gain.score_after),
    )
    assert result.stop_reason == "target reached"
    assert len(result.rounds) == first_gain.number
    assert result.score_after.score >= first_gain.score_after


def test_cancel_mid_repair_keeps_the_best_set_so_far(flux, panels, repaired, judge):
    class Stop(Exception):
        pass

    steps_per_round = 2 * 2
    done = []

    def progress(step, total):
        done.append(step)

    def cancel():
        if done and done[-1] > steps_per_round:  # inside round 2
            raise Stop

    result = repair_set(
        flux,
        judge,
        panels,
        THEME,
        layout="2x2",
        panel_prompts=PROMPTS,
        options=options(),
        hooks=Hooks(progress=progress, check_cancel=cancel),
    )
    assert result.cancelled and isinstance(result.cancel_error, Stop) and result.stop_reason == "cancelled"
    assert result.score_after.score == pytest.approx(repaired.rounds[0].score_after)
    assert result.score_after.score >= result.score_before.score
    assert len(result.rounds) == 2 and result.rounds[1].try_scores == []
    # the panels are those after round 1 (the same seeds without a cancel)
    one_round = repair_set(
        flux, judge, panels, THEME, layout="2x2", panel_prompts=PROMPTS, options=options(max_rounds=1)
    )
    for kept, expected in zip(result.panels, one_round.panels, strict=True):
        np.testing.assert_array_equal(pixels(kept), pixels(expected))


def test_edit_models_repair_from_the_best_panels(tiny_models, panels, judge):
    kontext = load_pipeline(tiny_models["flux-kontext"])
    result = repair_set(
        kontext, judge, panels, THEME, layout="2x2", panel_prompts=PROMPTS, options=options(max_rounds=2)
    )
    assert result.path == "edit"
    assert result.score_after.score >= result.score_before.score
    touched = {log.panel for log in result.rounds if log.kept_try is not None}
    for index in set(range(4)) - touched:
        np.testing.assert_array_equal(pixels(result.panels[index]), pixels(panels[index]))
    assert all(panel.size == (32, 32) for panel in result.panels)
