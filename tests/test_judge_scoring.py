"""Set and edit scoring, ranking, reasons and reports on top of the tiny local judge."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from paco_core.errors import InputError
from paco_core.reward import open_judge, prompts
from paco_core.reward.backend import JudgeBackend, PairRequest
from paco_core.reward.report import DIAGONAL_COLOR, format_set_report, render_pair_matrix
from paco_core.reward.scoring import explain_pair, rank_sets, score_edit, score_edits, score_set, score_sets


def random_images(count, seed=0, side=64):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"])


@pytest.fixture(scope="module")
def panels():
    return random_images(4, seed=3)


def test_prompts_are_the_released_texts_verbatim():
    assert prompts.set_consistency_prompt("a fox") == (
        'Given two subfigures generated based on the theme: "a fox", do the two images maintain consistency in '
        'terms of style, logic and identity? Answer "Yes" and "No" first, and then provide detailed reasons.'
    )
    assert prompts.set_consistency_prompt("  ") == (
        'Do the two images maintain consistency in terms of style, logic and identity? Answer "Yes" and "No" '
        "first, and then provide detailed reasons."
    )
    assert prompts.edit_consistency_prompt("add a hat") == (
        "Compare the edited image (second) with the original image (first). Instruction: 'add a hat'. Except "
        "for the parts that are intentionally changed according to the instruction, does the edited image remain "
        "consistent with the original in style, logic, and identity? Answer 'Yes' or 'No' first, then provide "
        "detailed reasons."
    )
    assert prompts.edit_following_prompt("add a hat") == (
        "Compare the edited image (second) with the original image (first). Instruction: 'add a hat'. Does the "
        "edited image accurately follow this instruction? Answer 'Yes' or 'No' first, then provide detailed reasons."
    )
    with pytest.raises(InputError, match="the edit instruction should be a non-empty text"):
        prompts.edit_following_prompt(" ")


def test_set_score_reduces_every_unordered_pair(judge, panels):
    assert isinstance(judge, JudgeBackend)
    result = score_set(judge, panels, "a fox in four seasons")
    prompt = prompts.set_consistency_prompt("a fox in four seasons")
    expected = judge.score_pairs(
        [PairRequest(panels[i], panels[j], prompt) for i, j in combinations(range(4), 2)]
    )
    assert [(i, j) for i, j, _ in result.pairs] == list(combinations(range(4), 2))
    assert [p for _, _, p in result.pairs] == expected
    assert result.score == pytest.approx(sum(expected) / 6)
    assert result.per_image[0] == pytest.approx((expected[0] + expected[1] + expected[2]) / 3)
    assert result.odd_one_out == int(np.argmin(result.per_image))
    for i in range(4):
        assert math.isnan(result.matrix[i][i])
        for j in range(4):
            if i != j:
                assert result.matrix[i][j] == result.matrix[j][i]
    assert result.to_json() == {
        "score": result.score,
        "pairs": [[i, j, p] for i, j, p in result.pairs],
        "per_image": result.per_image,
    }


def test_both_orders_fill_a_directional_matrix(judge, panels):
    result = score_set(judge, panels[:3], None, both_orders=True)
    prompt = prompts.REFERENCE_CONSISTENCY_PROMPT
    forward = judge.score_pairs([PairRequest(panels[0], panels[1], prompt)])[0]
    backward = judge.score_pairs([PairRequest(panels[1], panels[0], prompt)])[0]
    assert result.matrix[0][1] == forward and result.matrix[1][0] == backward
    assert forward != backward
    assert result.pairs[0] == (0, 1, pytest.approx((forward + backward) / 2))
    assert result.theme is None and result.both_orders


def test_sets_need_at_least_two_images(judge, panels):
    with pytest.raises(InputError, match="at least 2 images per set to compare, got 1 in set 0"):
        score_set(judge, panels[:1])
    with pytest.raises(InputError, match="at least 2 images per set to compare, got 1 in set 0"):
        score_set(judge, panels[0])
    with pytest.raises(InputError, match="set 0, image 1 should be a PIL image, got str"):
        score_set(judge, [panels[0], "panel.png"])
    with pytest.raises(InputError, match="one theme for all sets or one per set: got 1 themes for 2 sets"):
        score_sets(judge, [panels[:2], panels[2:]], ["a"])


def test_edit_scores_and_their_geometric_mean(judge, panels):
    result = score_edit(judge, panels[0], panels[1], "make it winter")
    consistency, following = judge.score_pairs(
        [
            PairRequest(panels[0], panels[1], prompts.edit_consistency_prompt("make it winter")),
            PairRequest(panels[0], panels[1], prompts.edit_following_prompt("make it winter")),
        ]
    )
    assert (result.consistency, result.following) == (consistency, following)
    assert result.overall == pytest.approx(math.sqrt(consistency * following))
    batch = score_edits(judge, panels[:2], panels[2:], "make it winter")
    assert len(batch) == 2 and batch[0] == score_edit(judge, panels[0], panels[2], "make it winter")


def test_edit_batches_must_line_up(judge, panels):
    with pytest.raises(InputError, match=r"got 2 original\(s\), 3 edited image\(s\) and 2 instruction\(s\)"):
        score_edits(judge, panels[:2], panels[:3], ["a", "b"])
    with pytest.raises(InputError, match="needs at least one"):
        score_edits(judge, [], [], [])
    with pytest.raises(InputError, match="the edit instruction should be a non-empty text"):
        score_edit(judge, panels[0], panels[1], "")


def test_rank_sets_orders_best_first(judge, panels):
    candidates = [panels[:2], panels[1:3], [panels[0], panels[0].copy()], panels[2:4]]
    ranking = rank_sets(judge, candidates, "a fox")
    scores = [score_set(judge, candidate, "a fox").score for candidate in candidates]
    assert [item.index for item in ranking] == sorted(range(4), key=lambda k: -scores[k])
    assert [item.rank for item in ranking] == [0, 1, 2, 3]
    assert ranking[0].score == max(scores)


def test_explain_pair_asks_the_chosen_prompt(judge, panels):
    text = explain_pair(judge, panels[0], panels[1], kind="edit_following", text="add snow", max_new_tokens=3)
    expected = judge.explain(PairRequest(panels[0], panels[1], prompts.edit_following_prompt("add snow")), 3)
    assert text == expected
    with pytest.raises(
        InputError, match="question kind should be one of set, edit_consistency, edit_following"
    ):
        explain_pair(judge, panels[0], panels[1], kind="style")


def test_heatmap_and_report_show_the_matrix(judge, panels):
    result = score_set(judge, panels, "a fox")
    heatmap = render_pair_matrix(result, cell_size=40)
    assert heatmap.size == (28 + 4 * 40, 28 + 4 * 40)
    corner = heatmap.getpixel((28 + 3, 28 + 3))  # inside cell (0, 0): the diagonal
    assert corner == DIAGONAL_COLOR
    assert heatmap.getpixel((28 + 40 + 3, 28 + 3)) != DIAGONAL_COLOR
    center = np.asarray(heatmap.crop((28 + 40, 28, 28 + 80, 68)))
    assert len({tuple(pixel) for row in center for pixel in row}) > 2  # the number is drawn in
    report = format_set_report(result)
    assert f"set consistency {result.score:.3f}" in report
    assert f"least consistent image: #{result.odd_one_out + 1}" in report
