"""The reference reward: panels judged against reference images, references encoded once per
judge (local and server), references of any size and mode, and its config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paco_core.config import config_from_dict
from paco_core.errors import ConfigError
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest
from paco_core.reward.judge_client import JudgeClient
from paco_core.reward.prompts import set_consistency_prompt
from paco_core.rl.config import RewardConfig, TrainConfig
from paco_core.rl.reference_reward import REFERENCE_MAX_SIDE, ReferenceReward, reference_image
from paco_core.rl.rewards import RewardModels, RewardSet

THEME = "a red fox in four seasons"


def _image(seed: int, size=(48, 48)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _grid(seed: int) -> Image.Image:
    """A 1x2 grid of two different panels (64x32)."""
    grid = Image.new("RGB", (64, 32))
    grid.paste(_image(seed, (32, 32)), (0, 0))
    grid.paste(_image(seed + 100, (32, 32)), (32, 0))
    return grid


class _Models:
    """The two things the reward asks of the run's RewardModels: the judge and the config."""

    def __init__(self, judge, references=("given-as-images.png",)):
        self.judge = judge
        self.config = RewardConfig(
            rewards=[{"name": "reference"}], references=references, judge_theme="theme"
        )


def _count_encoded_images(judge, monkeypatch) -> list[int]:
    counts: list[int] = []
    original = judge.model.get_image_features

    def counting(pixel_values, grids, **kwargs):
        counts.append(int(grids.shape[0]))
        return original(pixel_values, grids, **kwargs)

    monkeypatch.setattr(judge.model, "get_image_features", counting)
    return counts


def test_scores_are_the_judge_mean_over_panels_and_references(tiny_models):
    references = [_image(1), _image(2, (40, 56))]
    judge = open_judge(tiny_models["judge"], cache_size=0)
    reward = ReferenceReward(_Models(judge), references)
    grids = [_grid(10), _grid(20)]
    metadata = [{"kind": "set", "layout": "1x2", "theme": THEME}] * 2
    scores = reward(grids, ["p", "p"], metadata)
    # the same questions one by one on a fresh judge with no pinning
    fresh = open_judge(tiny_models["judge"], cache_size=0)
    question = set_consistency_prompt(THEME)
    for grid, score in zip(grids, scores, strict=True):
        panels = [grid.crop((0, 0, 32, 32)), grid.crop((32, 0, 64, 32))]
        expected = [
            fresh.score_pairs([PairRequest(reference_image(r), p, question)])[0]
            for p in panels
            for r in references
        ]
        assert score == pytest.approx(float(np.mean(expected)), abs=1e-5)
    assert 0.0 <= min(scores) <= max(scores) <= 1.0 and scores[0] != scores[1]


def test_references_are_encoded_once_per_judge_not_once_per_call(tiny_models, monkeypatch):
    references = [_image(1), _image(2)]
    metadata = [{"kind": "set", "layout": "1x2", "theme": THEME}] * 2
    calls = [[_grid(30), _grid(40)], [_grid(50), _grid(60)], [_grid(70), _grid(80)]]

    def encoded_per_call(pin: bool) -> list[int]:
        judge = open_judge(tiny_models["judge"], cache_size=0)
        counts = _count_encoded_images(judge, monkeypatch)
        reward = ReferenceReward(_Models(judge), references)
        if not pin:
            reward._pinned_on = judge  # as if already pinned: the judge never hears of the references
        per_call = []
        for grids in calls:
            before = sum(counts)
            reward(grids, ["p"] * 2, metadata)
            per_call.append(sum(counts) - before)
        return [sum(counts) - sum(per_call), *per_call]

    pinned, unpinned = encoded_per_call(True), encoded_per_call(False)
    # pinned: the 2 references once (in the first call), then 4 panels a call; unpinned: 4 + 2 a call
    assert pinned == [0, 2 + 4, 4, 4]
    assert unpinned == [0, 4 + 2, 4 + 2, 4 + 2]


def test_pinned_features_follow_the_judge_to_another_device_and_keep_scores(tiny_models):
    judge = open_judge(tiny_models["judge"], cache_size=0)
    reward = ReferenceReward(_Models(judge), [_image(3)])
    metadata = [{"kind": "set", "layout": "1x2", "theme": THEME}]
    first = reward([_grid(5)], ["p"], metadata)
    judge.move_to("cpu")
    assert all(p.embeds is not None for p in judge._pinned.values())
    assert reward([_grid(5)], ["p"], metadata) == pytest.approx(first, abs=1e-6)


def test_server_client_encodes_each_reference_data_url_once(monkeypatch):
    from paco_core.reward import judge_client

    encoded = []
    original = judge_client.image_data_url
    monkeypatch.setattr(
        judge_client, "image_data_url", lambda image, fmt="png": encoded.append(image) or original(image, fmt)
    )
    client = JudgeClient("http://127.0.0.1:9", "judge")
    reference = _image(1)
    client.pin_images([reference])
    panels = [_image(seed) for seed in range(4)]
    bodies = [
        client._request_body("judge", PairRequest(reference, p, "q?"), max_tokens=1, logprobs=True)
        for p in panels
    ]
    assert sum(image is reference for image in encoded) == 1 and len(encoded) == 1 + len(panels)
    assert len({body["messages"][0]["content"][0]["image_url"]["url"] for body in bodies}) == 1


@pytest.mark.parametrize(
    "mode_image",
    [
        Image.new("RGBA", (3000, 1000), (255, 0, 0, 0)),
        Image.new("L", (20, 30), 128),
        Image.new("P", (40, 40)),
        Image.new("CMYK", (50, 20), (0, 255, 0, 0)),
        Image.new("I;16", (64, 64), 40000),
        Image.new("1", (17, 9), 1),
    ],
    ids=["rgba-large", "grey", "palette", "cmyk", "16-bit", "bilevel"],
)
def test_references_of_any_size_and_mode_become_rgb_within_the_limit(mode_image, tmp_path):
    path = tmp_path / "ref.png" if mode_image.mode != "CMYK" else tmp_path / "ref.jpg"
    mode_image.save(path)
    config = RewardConfig(rewards=[{"name": "reference"}], references=[str(path)])
    images = ReferenceReward(_Models(None, config.references)).references
    assert images[0].mode == "RGB" and max(images[0].size) <= REFERENCE_MAX_SIDE
    if mode_image.mode == "RGBA":  # transparent pixels flatten on white, the aspect ratio stays
        assert images[0].getpixel((0, 0)) == (255, 255, 255) and images[0].size == (1024, 341)


def test_reference_reward_without_references_is_refused():
    with pytest.raises(
        ConfigError, match=r"reward reference needs reference images: set `rewards.references`"
    ):
        RewardConfig(rewards=[{"name": "consistency"}, {"name": "reference", "weight": 0.5}])
    with pytest.raises(ConfigError, match="reward reference needs reference images"):
        RewardConfig(rewards=[{"name": "consistency"}], eval_rewards=[{"name": "reference"}])


def _ready_config(tiny_models, tmp_path: Path, references) -> TrainConfig:
    train = tmp_path / "rows.jsonl"
    train.write_text('{"prompt": "a fox"}\n')
    return config_from_dict(
        TrainConfig,
        {
            "model": {"path": str(tiny_models["flux"]), "device": "cpu"},
            "data": {"train_file": str(train)},
            "rewards": {
                "rewards": [{"name": "reference"}],
                "references": references,
                "judge_path": str(tiny_models["judge"]),
            },
            "output_dir": str(tmp_path / "run"),
        },
    )


def test_missing_or_unreadable_references_fail_before_any_model_loads(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match=r"`rewards.references` entry '.*nope.png' does not exist"):
        _ready_config(tiny_models, tmp_path, [str(tmp_path / "nope.png")]).check_ready()
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ConfigError, match=r"notes.png' cannot be read as an image"):
        _ready_config(tiny_models, tmp_path, [str(tmp_path / "notes.png")]).check_ready()
    _image(1).save(tmp_path / "good.png")
    _ready_config(tiny_models, tmp_path, [str(tmp_path / "good.png")]).check_ready()


def test_reward_set_builds_the_reference_reward_by_name(tiny_models, tmp_path):
    _image(1).save(tmp_path / "ref.png")
    config = RewardConfig(
        rewards=[{"name": "reference"}],
        references=[str(tmp_path / "ref.png")],
        judge_path=str(tiny_models["judge"]),
    )
    rewards = RewardSet.from_config(config.rewards, RewardModels(config, "cpu"))
    scores = rewards.score([_grid(1)], ["a fox"], [{"kind": "set", "layout": "1x2", "theme": THEME}])
    assert scores.names == ["reference"] and 0.0 <= scores.scores[0, 0] <= 1.0 and not scores.failures
