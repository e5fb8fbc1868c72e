"""CLIP-T and PickScore from a CLIP model folder (the tiny CLIP stands in for PickScore)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paco_core.errors import InputError, ModelLoadError
from paco_core.reward.clip_score import PICKSCORE_DIVISOR, ClipScorer

PROMPTS = [
    "a red square on white",
    "a blue circle",
    "a green forest at night with a very long description " * 4,
]


@pytest.fixture(scope="module")
def scorer(tiny_models):
    return ClipScorer.from_pretrained(tiny_models["clip"], batch_size=2)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 256, (48 + 8 * k, 64, 3), dtype=np.uint8)) for k in range(3)]


def clip_logits(scorer, images, prompts):
    """``logit_scale * cos`` of each image with its own prompt, from CLIPModel's own forward."""
    inputs = scorer.processor(text=prompts, images=images, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return scorer.model(**inputs).logits_per_image.diagonal()


def test_clip_t_is_the_cosine_of_each_image_with_its_prompt(scorer, images):
    logits = clip_logits(scorer, images, PROMPTS)
    expected = (logits / scorer.model.logit_scale.exp()).tolist()
    assert scorer.clip_t(images, PROMPTS) == pytest.approx(expected, abs=1e-5)
    assert scorer.clip_t(images, PROMPTS[::-1])[0] != pytest.approx(expected[0], abs=1e-5)


def test_pick_score_is_logit_scale_times_cosine_over_26(scorer, images):
    expected = (clip_logits(scorer, images, PROMPTS) / PICKSCORE_DIVISOR).tolist()
    assert scorer.pick_score(images, PROMPTS) == pytest.approx(expected, abs=1e-5)


def test_clip_scoring_rejects_bad_input(scorer, images, tmp_path):
    with pytest.raises(InputError, match="one prompt per image, got 3 images and 2 prompts"):
        scorer.clip_t(images, PROMPTS[:2])
    with pytest.raises(InputError, match="prompt 1 should be a non-empty text"):
        scorer.pick_score(images[:2], ["a", ""])
    with pytest.raises(InputError, match="at least one image"):
        scorer.clip_t([], [])
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "flux"}))
    with pytest.raises(ModelLoadError, match="cannot be loaded as a CLIP model"):
        ClipScorer.from_pretrained(tmp_path)
