"""Prefix sharing in the local judge: pairs with the same first image reuse its key/value
cache; scores equal the one-pass path to 1e-5 (fp32) and fewer tokens go through the model."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest
from paco_core.reward.prompts import edit_consistency_prompt, set_consistency_prompt
from paco_core.reward.shared_prefix import equal_length_batches, plan_windows, worth_sharing

PROMPT = set_consistency_prompt("a red fox in four seasons")


def random_images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], batch_size=4, cache_size=0)


def set_pairs(num_panels, seed, sizes=None):
    panels = random_images(sizes or [(64, 64)] * num_panels, seed=seed)
    return [PairRequest(panels[i], panels[j], PROMPT) for i, j in combinations(range(num_panels), 2)]


def scores_both_ways(judge, pairs):
    judge.prefix_sharing = True
    shared = judge.score_pairs(pairs)
    judge.prefix_sharing = False
    plain = judge.score_pairs(pairs)
    judge.prefix_sharing = True
    return shared, plain


def tokens_through_the_model(judge, pairs) -> int:
    """Token positions the language model's embedding saw while scoring ``pairs``."""
    seen = []
    embed = judge.model.get_input_embeddings()
    handle = embed.register_forward_hook(lambda module, args, output: seen.append(args[0].numel()))
    try:
        judge.score_pairs(pairs)
    finally:
        handle.remove()
    return sum(seen)


@pytest.mark.parametrize("num_panels", [4, 8])
def test_shared_prefix_scores_equal_the_one_pass_path(judge, num_panels):
    pairs = set_pairs(num_panels, seed=num_panels)
    shared, plain = scores_both_ways(judge, pairs)
    assert len(shared) == num_panels * (num_panels - 1) // 2
    assert np.max(np.abs(np.array(shared) - np.array(plain))) < 1e-5
    assert len(set(np.round(plain, 6))) > 1  # the pairs really differ


def test_mixed_sizes_prompts_and_windows_equal_the_one_pass_path(tiny_models):
    # batch size 2: several windows of prefixes, suffix batches of several lengths
    judge = open_judge(tiny_models["judge"], batch_size=2, cache_size=0)
    images = random_images([(64, 64), (64, 96), (96, 64), (64, 64), (112, 56)], seed=3)
    long_prompt = set_consistency_prompt(
        "a much longer theme: a lighthouse keeper's year, told in ten panels"
    )
    pairs = [
        PairRequest(images[i], images[j], (PROMPT, long_prompt)[k % 2])
        for k, (i, j) in enumerate(combinations(range(5), 2))
    ]
    pairs.append(PairRequest(images[0], images[0], PROMPT))  # the same image twice
    shared, plain = scores_both_ways(judge, pairs)
    assert np.max(np.abs(np.array(shared) - np.array(plain))) < 1e-5
    judge.prefix_sharing = True
    logprobs_shared = judge.first_token_logprobs(pairs)
    judge.prefix_sharing = False
    logprobs_plain = judge.first_token_logprobs(pairs)
    for a, b in zip(logprobs_shared, logprobs_plain, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_edit_candidates_share_the_original(judge):
    original, *edited = random_images([(64, 64)] * 5, seed=7)
    pairs = [PairRequest(original, image, edit_consistency_prompt("make it night")) for image in edited]
    shared, plain = scores_both_ways(judge, pairs)
    assert np.max(np.abs(np.array(shared) - np.array(plain))) < 1e-5


def test_prefix_is_computed_once_per_first_image(judge):
    pairs = set_pairs(6, seed=11)  # 15 pairs, 5 distinct first panels
    judge.prefix_sharing = False
    plain_tokens = tokens_through_the_model(judge, pairs)
    judge.prefix_sharing = True
    shared_tokens = tokens_through_the_model(judge, pairs)
    row = plain_tokens // len(pairs)  # equal sizes: every row has the same length
    images = list(judge._prepare_images(pairs[:1], [("first", "second")]).values())
    prefix = judge._prefix_length(judge._row_layout(PROMPT, images))
    assert shared_tokens == 5 * prefix + 15 * (row - prefix)
    assert shared_tokens < plain_tokens


def test_progress_counts_every_pair(judge):
    pairs = set_pairs(5, seed=2)
    steps = []
    judge.score_pairs(pairs, hooks=Hooks(progress=lambda done, total: steps.append((done, total))))
    assert steps[-1] == (10, 10) and [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_planning_helpers():
    digests = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("c", "e")]
    assert worth_sharing(digests) and not worth_sharing([("a", "b"), ("b", "a")])
    windows = plan_windows(digests, max_prefixes=2, max_pairs=100)
    assert [(w.prefixes, w.pairs) for w in windows] == [(["a", "b"], [0, 1, 2]), (["c"], [3, 4])]
    windows = plan_windows(digests, max_prefixes=8, max_pairs=2)  # a prefix's pairs stay together
    assert [w.pairs for w in windows] == [[0, 1], [2, 3, 4]]
    lengths = {0: 5, 1: 6, 2: 5, 3: 5}
    assert equal_length_batches([0, 1, 2, 3], lengths, 2) == [[0, 2], [3], [1]]


def test_prefix_sharing_needs_a_forward_that_takes_the_cache(judge):
    from paco_core.reward.local import supports_prefix_sharing

    assert supports_prefix_sharing(judge.model) and judge.prefix_sharing
