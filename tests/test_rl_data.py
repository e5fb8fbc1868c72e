"""Prompt rows, splits, data order, resolution decoupling and reward scoring (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paco_core.errors import ConfigError, InputError, RewardError
from paco_core.rl.config import RewardSpec
from paco_core.rl.data import PromptRow, PromptSampler, load_splits, read_prompt_rows, row_size, split_rows
from paco_core.rl.rewards import RewardSet, check_invalid_share, load_user_reward

FIXTURES = Path(__file__).parent / "fixtures" / "rl"


@pytest.fixture
def toy_rewards_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_set_rows_read_with_theme_layout_and_criteria():
    rows = read_prompt_rows(FIXTURES / "sets.jsonl")
    assert len(rows) == 5 and {row.kind for row in rows} == {"set"}
    assert rows[0].layout == "2x2" and rows[0].theme.startswith("Generate four images")
    assert (rows[0].height, rows[0].width) == (1024, 1024)
    assert rows[0].metadata()["criteria"]["Identity"]


def test_a_missing_layout_comes_from_the_grid_prompt_and_a_missing_theme_stays_empty(tmp_path):
    from paco_core.prompts import judge_theme

    prompt = json.loads((FIXTURES / "sets.jsonl").read_text().splitlines()[0])["prompt"]
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": prompt}) + "\n")
    row = read_prompt_rows(tmp_path / "p.jsonl")[0]
    assert row.layout == "2x2" and row.theme == ""
    for source in ("preamble", "theme"):
        seen = judge_theme(row.prompt, source=source, theme=row.theme)
        assert "[TOP]-[LEFT]" not in seen and "depicting a red fox" in seen
    assert judge_theme(row.prompt, theme=row.theme).startswith("FOUR-PANEL Images with a 2x2 grid layout")


def test_edit_rows_resolve_images_next_to_the_file():
    rows = read_prompt_rows(FIXTURES / "edits.jsonl")
    assert rows[0].kind == "edit" and rows[0].prompt == "make the cube blue"
    assert Path(rows[0].image_path).is_file()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1 is not valid JSON"),
        (["[1, 2]"], "should be a JSON object"),
        (['{"text": "x"}'], "needs `prompt`"),
        (['{"instruction": "x"}'], "needs `image`"),
        (['{"instruction": "x", "image": "missing.png"}'], "does not exist"),
        ([""], "holds no rows"),
    ],
)
def test_bad_rows_raise_input_error(tmp_path, lines, message):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        read_prompt_rows(path)


def test_mixed_files_are_rejected(tmp_path):
    (tmp_path / "a.png").write_bytes((FIXTURES / "images" / "cube.png").read_bytes())
    lines = ['{"prompt": "a cat"}', '{"instruction": "x", "image": "a.png"}']
    (tmp_path / "rows.jsonl").write_text("\n".join(lines))
    with pytest.raises(InputError, match="mixes set rows and edit rows"):
        read_prompt_rows(tmp_path / "rows.jsonl")


def test_split_is_seeded_disjoint_and_complete():
    rows = [PromptRow("set", f"p{i}", i) for i in range(20)]
    first, again, other = split_rows(rows, 0.25, 1), split_rows(rows, 0.25, 1), split_rows(rows, 0.25, 2)
    assert len(first.eval) == 5 and len(first.train) == 15
    assert {r.index for r in first.train} | {r.index for r in first.eval} == set(range(20))
    assert [r.index for r in first.eval] == [r.index for r in again.eval]
    assert [r.index for r in first.eval] != [r.index for r in other.eval]
    assert split_rows(rows, 0.0, 1).eval == []


def test_eval_file_overrides_the_split():
    splits = load_splits(str(FIXTURES / "sets.jsonl"), str(FIXTURES / "sets.jsonl"), eval_fraction=0.5)
    assert len(splits.train) == 5 and len(splits.eval) == 5


def test_sampler_order_is_reproducible_and_resumable():
    rows = [PromptRow("set", f"p{i}", i) for i in range(5)]
    straight = PromptSampler(rows, seed=3)
    taken = [r.index for r in straight.next_rows(4)]
    state = straight.state_dict()
    rest = [r.index for r in straight.next_rows(6)]
    resumed = PromptSampler(rows, seed=3)
    resumed.load_state_dict(state)
    assert [r.index for r in resumed.next_rows(6)] == rest
    assert sorted(taken + rest[:1]) == list(range(5))  # one epoch holds every row once
    with pytest.raises(ConfigError, match="resume with the same data"):
        PromptSampler(rows[:3], seed=3).load_state_dict(state)


def test_row_size_scales_with_resolution_and_keeps_aspect():
    row = PromptRow("set", "p", 0, height=512, width=1536)
    assert row_size(row, 512, 1024) == (256, 768)
    assert row_size(row, 1024, 1024) == (512, 1536)
    edit = PromptRow("edit", "x", 0)
    assert row_size(edit, 384, 512, image_size=(400, 200)) == (272, 544)
    assert row_size(edit, 384, 512) == (384, 384)


def test_a_set_row_without_a_size_splits_into_its_layouts_panels():
    from paco_core.images import split_grid

    for layout, resolution, size in (("1x3", 512, (512, 528)), ("1x3", 32, (32, 48)), ("2x2", 32, (32, 32))):
        height, width = row_size(PromptRow("set", "p", 0, layout=layout), resolution, 1024)
        assert (height, width) == size, layout
        panels = split_grid(Image.new("RGB", (width, height)), layout)  # the judge scores panel by panel
        assert {panel.size for panel in panels} == {(width // int(layout[2]), height // int(layout[0]))}
        assert all(side % 16 == 0 for side in panels[0].size), "each panel fits the VAE's 16-pixel grid"


# --- rewards -----------------------------------------------------------------------------


def _images(values):
    return [Image.new("RGB", (8, 8), (v, v, v)) for v in values]


def test_user_reward_is_loaded_and_scores_each_image(toy_rewards_on_path):
    rewards = RewardSet.from_config([RewardSpec("toy_rewards:mean_brightness", 1.0)], models=None)
    scores = rewards.score(_images([0, 255, 51]), ["a"] * 3, [{}] * 3)
    np.testing.assert_allclose(scores.scores[:, 0], [0.0, 1.0, 0.2])
    assert scores.failures == {}


def test_failing_samples_are_invalid_and_counted_never_zero(toy_rewards_on_path):
    rewards = RewardSet.from_config(
        [RewardSpec("toy_rewards:mean_brightness", 1.0), RewardSpec("toy_rewards:fails_on_dark", 1.0)],
        models=None,
    )
    scores = rewards.score(_images([255, 10, 200, 5]), ["a"] * 4, [{}] * 4)
    column = scores.scores[:, 1]
    assert np.isnan(column[[1, 3]]).all() and np.allclose(column[[0, 2]], [1.0, 200 / 255])
    assert scores.failures == {"toy_rewards:fails_on_dark": 2}
    assert "cannot score a dark image" in scores.messages["toy_rewards:fails_on_dark"]
    assert check_invalid_share(scores, 0.5) == 0.5
    with pytest.raises(
        RewardError, match=r"2 of 4 images could not be scored \(50% > rewards.max_invalid_share 25%\)"
    ):
        check_invalid_share(scores, 0.25)


def test_none_scores_are_invalid(toy_rewards_on_path):
    rewards = RewardSet.from_config([RewardSpec("toy_rewards:none_for_all", 1.0)], models=None)
    scores = rewards.score(_images([1, 2]), ["a", "b"], [{}, {}])
    assert np.isnan(scores.scores).all() and scores.failures == {"toy_rewards:none_for_all": 2}


def test_reward_returning_the_wrong_count_is_an_error():
    rewards = RewardSet([RewardSpec("x:y", 1.0)], {"x:y": lambda images, prompts, metadata: [1.0]})
    with pytest.raises(RewardError, match="returned 1 scores for 2 images"):
        rewards.score(_images([1, 2]), ["a", "b"], [{}, {}])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module_xyz:f", "cannot import module"),
        ("json:no_such_function", "has no function"),
        ("json:", "should look like"),
    ],
)
def test_bad_user_reward_names_raise(name, message):
    with pytest.raises(ConfigError, match=message):
        load_user_reward(name)


# --- built-in rewards on the tiny judge and CLIP --------------------------------------------


def test_builtin_rewards_score_grids_and_edits(tiny_models):
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.rewards import RewardModels

    config = RewardConfig(
        rewards=(RewardSpec("consistency", 1.0), RewardSpec("clip_t", 1.0), RewardSpec("pickscore", 1.0)),
        judge_path=str(tiny_models["judge"]),
        clip_path=str(tiny_models["clip"]),
        pickscore_path=str(tiny_models["clip"]),  # the tiny CLIP stands in for PickScore
    )
    models = RewardModels(config, "cpu")
    rows = read_prompt_rows(FIXTURES / "sets.jsonl")[:2]
    rng = np.random.default_rng(0)
    grids = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in rows]
    scores = RewardSet.from_config(config.rewards, models).score(
        grids, [r.prompt for r in rows], [r.metadata() for r in rows]
    )
    assert scores.failures == {} and np.isfinite(scores.scores).all()
    assert ((scores.scores[:, 0] > 0) & (scores.scores[:, 0] < 1)).all()  # a probability of "Yes"

    edits = read_prompt_rows(FIXTURES / "edits.jsonl")[:2]
    edited = [Image.open(row.image_path).convert("RGB").rotate(90) for row in edits]
    edit_rewards = RewardSet.from_config([RewardSpec("edit", 1.0)], models)
    edit_scores = edit_rewards.score(edited, [r.prompt for r in edits], [r.metadata() for r in edits])
    assert (
        np.isfinite(edit_scores.scores).all() and ((edit_scores.scores > 0) & (edit_scores.scores < 1)).all()
    )


def test_edit_reward_judges_the_original_at_its_own_resolution(tiny_models, monkeypatch):
    from paco_core.reward import scoring
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.rewards import RewardModels

    seen = []
    real_score_edits = scoring.score_edits

    def recording(judge, originals, edited, instructions, **kwargs):
        seen.append(([o.size for o in originals], [e.size for e in edited]))
        return real_score_edits(judge, originals, edited, instructions, **kwargs)

    monkeypatch.setattr(scoring, "score_edits", recording)
    models = RewardModels(
        RewardConfig(rewards=(RewardSpec("edit"),), judge_path=str(tiny_models["judge"])), "cpu"
    )
    rows = read_prompt_rows(FIXTURES / "edits.jsonl")[:2]
    own_sizes = [Image.open(row.image_path).size for row in rows]
    edited = [Image.new("RGB", (48, 32), "gray") for _ in rows]  # the edit's (train) size differs
    assert all(size != (48, 32) for size in own_sizes)
    scores = RewardSet.from_config([RewardSpec("edit")], models).score(
        edited, [r.prompt for r in rows], [r.metadata() for r in rows]
    )
    assert np.isfinite(scores.scores).all()
    assert seen == [(own_sizes, [(48, 32)] * 2)]


def test_pickscore_never_falls_back_to_clip(tiny_models):
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.rewards import RewardModels

    models = RewardModels(
        RewardConfig(rewards=(RewardSpec("pickscore"),), clip_path=str(tiny_models["clip"])), "cpu"
    )
    with pytest.raises(
        ConfigError, match="pickscore needs the PickScore model: set `rewards.pickscore_path`"
    ):
        RewardSet.from_config([RewardSpec("pickscore")], models)
    models = RewardModels(
        RewardConfig(rewards=(RewardSpec("clip_t"),), pickscore_path=str(tiny_models["clip"])), "cpu"
    )
    with pytest.raises(ConfigError, match="clip_t needs a CLIP model: set `rewards.clip_path`"):
        RewardSet.from_config([RewardSpec("clip_t")], models)
    assert models.pick.model.dtype == torch.float32  # CLIP and PickScore score in fp32, as released


def test_consistency_of_a_single_panel_is_invalid_not_zero(tiny_models):
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.rewards import RewardModels

    models = RewardModels(
        RewardConfig(rewards=(RewardSpec("consistency"),), judge_path=str(tiny_models["judge"])), "cpu"
    )
    rewards = RewardSet.from_config([RewardSpec("consistency")], models)
    scores = rewards.score(_images([100, 120]), ["a cat", "a dog"], [{"layout": "1x1"}, {"layout": "1x2"}])
    assert np.isnan(scores.scores[0, 0]) and np.isfinite(scores.scores[1, 0])
    assert scores.failures == {"consistency": 1}


class _RecordingJudge:
    """Wraps the tiny judge and keeps the text of every pair request it is asked."""

    def __init__(self, judge):
        self.judge, self.texts = judge, []

    def score_pairs(self, requests, hooks=None):
        self.texts += [request.prompt for request in requests]
        return self.judge.score_pairs(requests, hooks)


@pytest.mark.parametrize("source", ["preamble", "theme"])
def test_the_consistency_reward_asks_the_judge_with_the_configured_judge_theme(tiny_models, source):
    from paco_core.prompts import judge_theme, parse_grid_prompt
    from paco_core.reward.prompts import set_consistency_prompt
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.rewards import RewardModels

    config = RewardConfig(
        rewards=(RewardSpec("consistency"),), judge_path=str(tiny_models["judge"]), judge_theme=source
    )
    models = RewardModels(config, "cpu")
    recorder = _RecordingJudge(models.judge)
    models._judge = recorder
    row = read_prompt_rows(FIXTURES / "sets.jsonl")[0]
    grid = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    scores = RewardSet.from_config(config.rewards, models).score([grid], [row.prompt], [row.metadata()])
    assert np.isfinite(scores.scores).all()
    expected = parse_grid_prompt(row.prompt).judge_theme if source == "preamble" else row.theme
    assert expected == judge_theme(row.prompt, source=source, theme=row.theme)
    assert recorder.texts and set(recorder.texts) == {set_consistency_prompt(expected)}
    assert expected.startswith("FOUR-PANEL") == (source == "preamble")
