"""Guarded edit chains on the tiny Kontext model and judge: without retries the chain is the
plain chain, a step is retried only while below the threshold, drift that persists is
re-anchored on the origin, and each step's scores against the origin are the judge's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.consistency.drift import GuardOptions, guarded_edit_chain, joined_instructions
from paco_core.errors import InputError
from paco_core.generate import EditOptions, edit_chain, edit_image
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge
from paco_core.reward.scoring import score_edit

INSTRUCTIONS = ["make it winter", "make it night", "add a red scarf"]
OPTIONS = EditOptions(steps=2, seed=3)


@pytest.fixture(scope="module")
def kontext(tiny_models):
    return load_pipeline(tiny_models["flux-kontext"])


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], batch_size=4)


@pytest.fixture(scope="module")
def origin():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def unguarded(kontext, judge, origin):
    """Threshold 0: every step judged, none retried."""
    return guarded_edit_chain(kontext, judge, origin, INSTRUCTIONS, OPTIONS, GuardOptions(threshold=0.0))


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_a_guard_that_never_fires_gives_the_plain_chain_and_reports_each_step_against_the_origin(
    kontext, judge, origin, unguarded
):
    plain = edit_chain(kontext, origin, INSTRUCTIONS, OPTIONS)
    assert [len(step.tries) for step in unguarded.steps] == [1, 1, 1]
    assert unguarded.num_edits == 3 and all(step.passed for step in unguarded.steps)
    for guarded_image, plain_image in zip(unguarded.images, plain.images, strict=True):
        assert np.array_equal(pixels(guarded_image), pixels(plain_image))
    for number, step in enumerate(unguarded.steps, start=1):  # the scores are the judge's own
        so_far = joined_instructions(INSTRUCTIONS[:number])
        against_origin = score_edit(judge, origin, step.image, so_far)
        previous = origin if number == 1 else unguarded.steps[number - 2].image
        against_previous = score_edit(judge, previous, step.image, INSTRUCTIONS[number - 1])
        assert step.origin_score.consistency == pytest.approx(against_origin.consistency, abs=1e-6)
        assert step.step_score.overall == pytest.approx(against_previous.overall, abs=1e-6)
    report = unguarded.report()
    for number, step in enumerate(unguarded.steps, start=1):
        assert f"step {number} " in report and f"vs origin {step.origin_score.consistency:.3f}" in report
    assert "time and memory" in report


def first_try_score(unguarded) -> float:
    return unguarded.steps[0].tries[0].guard_score


@pytest.mark.parametrize("above", [False, True])
def test_a_step_is_retried_only_while_below_the_threshold(kontext, judge, origin, unguarded, above):
    # step 1 is the same in every run (same source, same seed): put the threshold just
    # below or just above its first try's score
    threshold = first_try_score(unguarded) + (1e-6 if above else -1e-6)
    guard = GuardOptions(threshold=threshold, tries=3, reanchor=False)
    chain = guarded_edit_chain(kontext, judge, origin, INSTRUCTIONS, OPTIONS, guard)
    assert chain.steps[0].retried is above
    for step in chain.steps:
        scores = [item.guard_score for item in step.tries]
        assert all(score < threshold for score in scores[:-1])  # every try but the last was below
        assert step.retried == (scores[0] < threshold)
        assert len(scores) == 3 or scores[-1] >= threshold  # stopped at the first that passed
        assert step.kept == max(range(len(scores)), key=lambda k: (scores[k], -k))
        assert not step.reanchored
    assert chain.num_edits == sum(len(step.tries) for step in chain.steps)
    seeds = [item.seed for step in chain.steps for item in step.tries]
    assert len(set(seeds)) == len(seeds)  # every try its own seed


def test_drift_that_persists_is_re_anchored_on_the_origin(kontext, judge, origin):
    guard = GuardOptions(threshold=1.0, tries=2, reanchor=True)  # nothing reaches 1.0
    chain = guarded_edit_chain(kontext, judge, origin, INSTRUCTIONS[:2], OPTIONS, guard)
    first, second = chain.steps
    assert [item.source for item in first.tries] == [
        "previous",
        "previous",
    ]  # step 1's previous is the origin
    assert [item.source for item in second.tries] == ["previous", "previous", "origin", "origin"]
    so_far = joined_instructions(INSTRUCTIONS[:2])
    for item in second.tries[2:]:
        assert item.instruction == so_far
        direct = edit_image(kontext, origin, so_far, EditOptions(steps=2, seed=item.seed))
        assert np.array_equal(pixels(item.image), pixels(direct.image))
    scores = [item.guard_score for item in second.tries]
    assert second.kept == max(range(4), key=lambda k: (scores[k], -k)) and not second.passed
    assert second.reanchored == (second.tries[second.kept].source == "origin")
    assert chain.num_edits == 6 and chain.num_questions <= 6 * 4


def test_progress_reaches_the_end_and_cancel_stops_the_chain(kontext, judge, origin):
    seen = []
    guard = GuardOptions(threshold=0.0)
    guarded_edit_chain(
        kontext,
        judge,
        origin,
        INSTRUCTIONS[:2],
        OPTIONS,
        guard,
        hooks=Hooks(progress=lambda d, t: seen.append((d, t))),
    )
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)

    class Stop(Exception):
        pass

    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 3:
            raise Stop

    with pytest.raises(Stop):
        guarded_edit_chain(
            kontext, judge, origin, INSTRUCTIONS, OPTIONS, guard, hooks=Hooks(check_cancel=cancel)
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 1.5}, "`threshold` should be from 0 to 1"),
        ({"threshold": -0.1}, "`threshold` should be from 0 to 1"),
        ({"threshold": math.nan}, "`threshold` should be a number from 0 to 1"),
        ({"tries": 0}, "`tries` should be a whole number from 1 to 16, got 0"),
        ({"tries": 2.0}, "`tries` should be a whole number"),
    ],
)
def test_bad_guard_options_get_one_line_errors(changes, message):
    with pytest.raises(InputError, match=message) as caught:
        GuardOptions(**changes)
    assert "\n" not in str(caught.value)


def test_a_set_pipeline_or_no_instructions_is_refused(tiny_models, judge, origin, kontext):
    with pytest.raises(InputError, match="an edit needs at least one instruction"):
        guarded_edit_chain(kontext, judge, origin, [], OPTIONS)
    flux = load_pipeline(tiny_models["flux"])
    with pytest.raises(InputError, match="cannot edit an image with a flux pipeline"):
        guarded_edit_chain(flux, judge, origin, INSTRUCTIONS, OPTIONS)
