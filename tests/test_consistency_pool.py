"""The most consistent set from a pool: exact search equals brute force on every enumerable
case, the beam search is bounded by best-of-N below and the exact optimum above, each panel
is encoded once, and the assembled set's score is the judge's score of that set."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from PIL import Image

from paco_core.consistency.pool import (
    PoolScores,
    assemble_from_pool,
    beam_search,
    choose_panels,
    exact_search,
    score_pool,
)
from paco_core.errors import InputError
from paco_core.generate import SetRequest, generate_sets
from paco_core.models.pipelines import load_pipeline
from paco_core.reward import open_judge
from paco_core.reward.scoring import rank_sets, score_set

THEME = "a red fox explorer"


def random_scores(num_candidates: int, num_panels: int, seed: int, both_orders: bool = False) -> PoolScores:
    """A pool's pair table filled with seeded random scores (the search only reads the table)."""
    rng = np.random.default_rng(seed)

    def table():
        return rng.random((num_panels, num_panels, num_candidates, num_candidates)).tolist()

    forward = table()
    return PoolScores(
        num_panels=num_panels,
        num_candidates=num_candidates,
        forward=forward,
        backward=table() if both_orders else forward,
        both_orders=both_orders,
    )


def brute_force(scores: PoolScores) -> tuple[tuple[int, ...], float]:
    """Every assignment scored from scratch; the first of the best."""
    best, best_score = None, float("-inf")
    for choice in product(range(scores.num_candidates), repeat=scores.num_panels):
        total = 0.0
        for i in range(scores.num_panels):
            for j in range(i + 1, scores.num_panels):
                total += (
                    scores.forward[i][j][choice[i]][choice[j]] + scores.backward[i][j][choice[i]][choice[j]]
                ) / 2
        score = total / (scores.num_panels * (scores.num_panels - 1) / 2)
        if score > best_score + 1e-12:
            best, best_score = choice, score
    return best, best_score


ENUMERABLE = [(k, n) for k in range(1, 6) for n in range(2, 7) if k**n <= 3125]


@pytest.mark.parametrize(("num_candidates", "num_panels"), ENUMERABLE)
@pytest.mark.parametrize("both_orders", [False, True])
def test_exact_search_equals_brute_force_on_every_enumerable_case(num_candidates, num_panels, both_orders):
    for seed in range(3):
        scores = random_scores(num_candidates, num_panels, seed, both_orders)
        expected_choice, expected_score = brute_force(scores)
        found = exact_search(scores)
        assert found.score == pytest.approx(expected_score, abs=1e-12)
        assert found.choice == expected_choice
        assert found.num_visited == num_candidates**num_panels
        assert found.search == "exact"


@pytest.mark.parametrize(("num_candidates", "num_panels"), [(k, n) for k, n in ENUMERABLE if k > 1])
def test_beam_search_keeping_every_partial_set_is_exact(num_candidates, num_panels):
    scores = random_scores(num_candidates, num_panels, seed=11)
    found = beam_search(scores, beam_width=num_candidates ** (num_panels - 1))
    expected_choice, expected_score = brute_force(scores)
    assert found.choice == expected_choice and found.score == pytest.approx(expected_score, abs=1e-12)
    assert found.search == "beam"


@pytest.mark.parametrize("beam_width", [1, 2, 4])
def test_narrow_beams_lie_between_best_of_n_and_the_exact_optimum_and_are_local_optima(beam_width):
    for seed in range(15):
        scores = random_scores(4, 6, seed)
        found = beam_search(scores, beam_width)
        _, exact = brute_force(scores)
        assert max(scores.whole_set_scores()) - 1e-12 <= found.score <= exact + 1e-12
        for panel in range(6):  # no single panel's change improves it
            for candidate in range(4):
                trial = list(found.choice)
                trial[panel] = candidate
                assert scores.set_score(trial) <= found.score + 1e-12


def test_choose_panels_is_exact_up_to_max_exact_then_beam():
    scores = random_scores(3, 4, seed=5)
    assert choose_panels(scores, max_exact=81).search == "exact"
    beam = choose_panels(scores, max_exact=80, beam_width=27)
    assert beam.search == "beam" and beam.choice == brute_force(scores)[0]


# --------------------------------------------------------------------------- with the tiny judge


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], batch_size=4, cache_size=0)


def random_pool(
    num_candidates: int, num_panels: int, seed: int = 0, size=(48, 32)
) -> list[list[Image.Image]]:
    rng = np.random.default_rng(seed)
    return [
        [
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(num_panels)
        ]
        for _ in range(num_candidates)
    ]


def test_the_assembled_set_scores_what_the_judge_gives_that_set_and_the_whole_sets_their_ranking(judge):
    pool = random_pool(3, 3, seed=1)
    result = assemble_from_pool(judge, pool, THEME)
    assert result.panels == [pool[candidate][panel] for panel, candidate in enumerate(result.choice)]
    alone = score_set(judge, result.panels, THEME)
    assert result.score == pytest.approx(alone.score, abs=1e-5)
    assert np.allclose(result.set_score.per_image, alone.per_image, atol=1e-5)
    ranking = sorted(rank_sets(judge, pool, THEME), key=lambda item: item.index)
    assert np.allclose(result.whole_set_scores, [item.score for item in ranking], atol=1e-5)
    assert result.score >= result.best_whole_score - 1e-12 and result.gain >= -1e-12
    assert result.num_questions == 3 * 3 * 3  # K^2 * N(N-1)/2
    assert result.search == "exact" and result.num_visited == 27
    assert result.usage is not None and result.usage.seconds > 0
    report = result.report()
    assert f"{result.score:.3f}" in report and "best-of-3" in report and "time and memory" in report


def test_both_orders_asks_each_pair_twice_and_matches_the_set_scored_in_both_orders(judge):
    pool = random_pool(2, 3, seed=2)
    result = assemble_from_pool(judge, pool, THEME, both_orders=True)
    assert result.num_questions == 2 * 2 * 2 * 3
    alone = score_set(judge, result.panels, THEME, both_orders=True)
    assert result.score == pytest.approx(alone.score, abs=1e-5)


def test_each_panel_is_encoded_once_and_prefixes_are_shared(judge, monkeypatch):
    num_candidates, num_panels = 3, 4
    pool = random_pool(num_candidates, num_panels, seed=3)
    encoded, prefixes = [], []
    encode, forward_prefixes = judge.model.get_image_features, judge._forward_prefixes

    def counting_encode(pixel_values, grids, **kwargs):
        encoded.append(len(grids))
        return encode(pixel_values, grids, **kwargs)

    def counting_prefixes(rows, images):
        prefixes.append(len(rows))
        return forward_prefixes(rows, images)

    monkeypatch.setattr(judge.model, "get_image_features", counting_encode)
    monkeypatch.setattr(judge, "_forward_prefixes", counting_prefixes)
    scores = score_pool(judge, pool, THEME)
    assert sum(encoded) == num_candidates * num_panels  # every panel once, none twice
    assert sum(prefixes) == num_candidates * (num_panels - 1)  # one prefix per panel that is shown first
    assert scores.num_questions == num_candidates**2 * num_panels * (num_panels - 1) // 2


def test_a_pool_of_generated_sets_keeps_the_chosen_panels_pixel_for_pixel(tiny_models, judge):
    flux = load_pipeline(tiny_models["flux"])
    request = SetRequest(
        theme=THEME,
        panels=("packs a map", "crosses a bridge", "climbs", "sleeps"),
        layout="2x2",
        panel_width=32,
        panel_height=16,
        steps=2,
        seed=4,
    )
    sets = generate_sets(flux, request, num_sets=3)
    result = assemble_from_pool(judge, [item.panels for item in sets], THEME)
    for panel, candidate in enumerate(result.choice):
        assert np.array_equal(np.asarray(result.panels[panel]), np.asarray(sets[candidate].panels[panel]))
    assert result.score >= result.best_whole_score - 1e-12


def test_a_pool_of_one_set_is_that_set(judge):
    pool = random_pool(1, 3, seed=4)
    result = assemble_from_pool(judge, pool, THEME)
    assert result.choice == (0, 0, 0) and result.gain == 0 and result.panels == pool[0]


@pytest.mark.parametrize(
    ("make_pool", "message"),
    [
        (lambda: [], "pool \\(candidates\\) needs at least 1 candidate set, got 0"),
        (lambda: random_pool(2, 3)[:1] + random_pool(1, 4), "candidate set 2 has 4 panels but set 1 has 3"),
        (
            lambda: random_pool(1, 3) + random_pool(1, 3, size=(32, 32)),
            "candidate set 2, panel 1 is 32x32 but set 1's panels are 48x32",
        ),
        (lambda: random_pool(2, 1), "at least 2 images per set"),
    ],
)
def test_bad_pools_get_one_line_errors_naming_the_input(judge, make_pool, message):
    with pytest.raises(InputError, match=message) as caught:
        assemble_from_pool(judge, make_pool(), THEME)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("beam_width", 0), ("max_exact", -1), ("beam_width", 1.5)])
def test_bad_search_limits_are_refused_before_the_judge_runs(judge, name, value):
    with pytest.raises(InputError, match=f"`{name}` should be a whole number >= 1"):
        assemble_from_pool(judge, random_pool(2, 2), THEME, **{name: value})
