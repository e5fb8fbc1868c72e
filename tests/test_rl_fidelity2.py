"""Fidelity round 2 on the tiny models: trained steps apart from the noise steps, the old
log-prob recomputed through the frozen LoRA, the released log-tame function, square edit
sizes and the TF32 switch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.config import config_from_dict
from paco_core.errors import ConfigError
from paco_core.rl.advantages import compute_advantages
from paco_core.rl.config import RewardConfig, SamplingConfig
from paco_core.rl.device_contexts import apply_tf32
from paco_core.rl.trainer import GrpoTrainer


def _trainer(config) -> GrpoTrainer:
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    return trainer


def _transformer_calls(trainer: GrpoTrainer, action) -> int:
    calls = []
    handle = trainer.transformer.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        action()
    finally:
        handle.remove()
    return len(calls)


# --------------------------------------------------------------------- 1. trained steps


def test_trained_steps_default_to_the_noise_steps_and_must_be_noise_steps():
    assert SamplingConfig(noise_steps=(1, 2)).trained_steps == (1, 2)
    assert SamplingConfig(noise_steps=(1, 2, 3, 4), trained_steps=(1,)).trained_steps == (1,)
    with pytest.raises(ConfigError, match=r"names steps that are not noise steps \[1\]: \[2\]"):
        SamplingConfig(noise_steps=(1,), trained_steps=(2,))
    with pytest.raises(ConfigError, match="may miss `sampling.trained_steps`"):
        SamplingConfig(noise_steps=(1, 2), trained_steps=(1,), num_noise_steps_per_iteration=1)


def test_a_noise_step_that_is_not_trained_is_sampled_but_not_trained(tiny_models, tmp_path):
    both = _trainer(tiny_config(tiny_models["flux"], tmp_path / "both"))
    one = _trainer(tiny_config(tiny_models["flux"], tmp_path / "one", sampling={"trained_steps": [1]}))
    full = both.collect_rollouts(both.sampler.next_rows(1), step=0, sde_steps=(0, 1))[0]
    trained = one.collect_rollouts(one.sampler.next_rows(1), step=0, sde_steps=(0, 1))[0]
    # the same samples (SDE at both steps), only step 1's transition kept
    assert [np.asarray(i).tolist() for i in trained.images] == [np.asarray(i).tolist() for i in full.images]
    assert (trained.sde_steps, trained.trained_steps, tuple(trained.log_probs.shape)) == (
        (0, 1),
        (1,),
        (1, 2),
    )
    assert torch.equal(trained.latents[0], full.latents[1]) and torch.equal(
        trained.log_probs[0], full.log_probs[1]
    )
    # the update runs the transformer once per trained step and micro-batch
    advantages = compute_advantages(np.array([[0.2], [0.8]]), [1.0], [0, 0], aggregation="weighted_sum")
    calls_one = _transformer_calls(one, lambda: one.updater.update([trained], advantages, step=0))
    calls_both = _transformer_calls(both, lambda: both.updater.update([full], advantages, step=0))
    assert (calls_one, calls_both) == (1, 2)
    metrics = one.run_iteration(1)
    assert (metrics["sde_steps"], metrics["trained_steps"]) == ([0, 1], [1])


# --------------------------------------------------------------------- 3. the old log-prob


def test_recomputed_old_log_prob_makes_the_first_ratio_exactly_one(tiny_models, tmp_path):
    config = tiny_config(
        tiny_models["flux"],
        tmp_path / "run",
        sampling={"prompts_per_iteration": 2, "batch_size": 1},
        optim={
            "lr": 5e-2,
            "clip_range": 1e-4,
            "old_log_prob": "recompute",
            "optimizer_steps_per_iteration": 2,
        },
    )
    trainer = _trainer(config)
    rollouts = trainer.collect_rollouts(trainer.sampler.next_rows(2), step=0, sde_steps=(0, 1))
    stored = [r.log_probs.clone() for r in rollouts]
    for rollout in rollouts:  # what a rollout under other (inference) kernels would have stored
        rollout.log_probs += 1e-3
    used_old = []
    original = trainer.updater.old_log_prob

    def recording(rollout, k):
        value = original(rollout, k)
        used_old.append(value.clone())
        return value

    trainer.updater.old_log_prob = recording
    before = {n: p.detach().clone() for n, p in trainer.named_trainable}
    groups = np.repeat(np.arange(2), 2)
    advantages = compute_advantages(
        np.array([[0.1], [0.9], [0.3], [0.6]]), [1.0], groups, aggregation="weighted_sum"
    )
    metrics = trainer.updater.update(rollouts, advantages, step=0)
    assert metrics["policy/ratio_first"] == 1.0 and metrics["policy/optimizer_steps"] == 2
    # every old log-prob is the frozen (sampling) policy's, also after the first optimizer step
    expected = [stored[position][k] for position in range(4) for k in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(used_old, expected, strict=True))
    assert any(not torch.equal(p, before[n]) for n, p in trainer.named_trainable)  # the live LoRA trained
    assert metrics["policy/ratio_min"] < 1.0 or metrics["policy/ratio_max"] > 1.0


def test_stored_old_log_prob_takes_the_rollout_value(tiny_models, tmp_path):
    trainer = _trainer(tiny_config(tiny_models["flux"], tmp_path / "run", optim={"clip_range": 1e-4}))
    rollout = trainer.collect_rollouts(trainer.sampler.next_rows(1), step=0, sde_steps=(0, 1))[0]
    rollout.log_probs += 1e-3
    loss = trainer.updater.micro_batch_loss(rollout, 0, torch.ones(2), torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(loss.ratio, torch.full((2,), float(np.exp(-1e-3))))


def test_measure_first_ratio_reports_both_modes_and_leaves_the_lora(tiny_models, tmp_path):
    from paco_core.rl.ratio_check import measure_first_ratio

    trainer = _trainer(tiny_config(tiny_models["flux"], tmp_path / "run"))
    with torch.no_grad():  # a trained-looking LoRA
        generator = torch.Generator().manual_seed(0)
        for name, param in trainer.named_trainable:
            if "lora_B" in name:
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    before = {n: p.detach().clone() for n, p in trainer.named_trainable}
    ratios = measure_first_ratio(trainer)
    assert set(ratios) == {"rollout", "recompute"}
    assert ratios["recompute"].max_deviation == 0.0 and ratios["recompute"].ratio_mean == 1.0
    assert ratios["rollout"].max_deviation < 1e-4  # the CPU runs one kernel: no gap to measure here
    assert all(torch.equal(p, before[n]) for n, p in trainer.named_trainable)
    assert json.dumps({m: r.as_dict() for m, r in ratios.items()})


# --------------------------------------------------------------------- 4. the released log-tame function


def released_log_tame_reference(grouped: dict[str, dict[str, np.ndarray]], weights, threshold):
    """Written from the description of log_tame_aggregate_fn: rewards given per prompt
    ({reward: {prompt: values}}); h over every prompt's values; the weighted sum per prompt."""
    prompts = list(next(iter(grouped.values())))
    h = {}
    for name, by_prompt in grouped.items():
        values = np.concatenate([by_prompt[p] for p in prompts])
        h[name] = np.std(values) / (np.mean(values) + 1e-6)
    if threshold == "mean":
        limit = np.mean(list(h.values()))
    elif threshold == "median":
        limit = np.median(list(h.values()))
    else:
        limit = threshold
    tamed = {name: (h[name] > limit) for name in grouped}
    return {
        p: sum(
            weights.get(name, 1.0) * (np.log(1 + grouped[name][p]) if tamed[name] else grouped[name][p])
            for name in grouped
        )
        for p in prompts
    }


REWARDS = np.array(
    [
        [0.91, 0.31, 1.8],
        [0.95, 0.28, 0.2],
        [0.89, 0.33, 2.9],
        [0.97, 0.30, 0.9],
        [0.62, 0.25, 1.1],
        [0.70, 0.29, 3.4],
        [0.58, 0.27, 0.4],
        [0.66, 0.24, 2.2],
        [0.80, 0.35, -0.3],
        [0.84, 0.26, 1.5],
        [0.79, 0.32, 0.7],
        [0.83, 0.30, 2.6],
    ]
)
"""Fixed rewards: 3 prompts x 4 images; a judge-like score, a CLIP-T-like score, a spread-out one."""


@pytest.mark.parametrize("threshold", ["mean", "median", 0.2, 0.0, 2])
def test_released_log_tame_equals_the_released_function(threshold):
    names, weights = ["consistency", "clip_t", "pickscore"], [0.2, 1.0, 1.0]
    groups = np.repeat(np.arange(3), 4)
    grouped = {n: {f"p{g}": REWARDS[groups == g, k] for g in range(3)} for k, n in enumerate(names)}
    expected = released_log_tame_reference(grouped, dict(zip(names, weights, strict=True)), threshold)
    result = compute_advantages(
        REWARDS,
        weights,
        groups,
        aggregation="log_tamed_released",
        released_threshold=threshold,
        clip_max=100.0,
    )
    np.testing.assert_allclose(
        result.values, np.concatenate([expected[f"p{g}"] for g in range(3)]), atol=1e-6
    )
    np.testing.assert_allclose(result.aggregated, result.values, atol=0)  # no per-prompt normalisation


def test_released_log_tame_taming_choices_and_the_difference_to_ours():
    groups = np.repeat(np.arange(3), 4)
    weights = [0.2, 1.0, 1.0]
    by_mean = compute_advantages(REWARDS, weights, groups, aggregation="log_tamed_released")
    by_median = compute_advantages(
        REWARDS, weights, groups, aggregation="log_tamed_released", released_threshold="median"
    )
    assert by_mean.tamed.tolist() == [False, False, True]  # only the spread-out reward is above the mean h
    assert by_median.tamed.tolist() == [False, False, True]
    assert by_mean.cv_ratios[2] == pytest.approx(
        REWARDS[:, 2].std() / (REWARDS[:, 2].mean() + 1e-6), abs=1e-12
    )
    ours = compute_advantages(REWARDS, weights, groups, aggregation="log_tamed", threshold=0.0)
    assert ours.tamed.tolist() == by_mean.tamed.tolist()  # delta = the mean of the h: the same taming ...
    for g in range(3):  # ... but ours normalises per prompt, the released function does not
        assert abs(ours.values[groups == g].mean()) < 1e-9
    assert abs(by_mean.values.mean()) > 0.5
    clipped = compute_advantages(REWARDS, weights, groups, aggregation="log_tamed_released", clip_max=1.0)
    assert clipped.values.max() == 1.0  # the released loss clips the advantage to +-adv_clip_max


def test_released_log_tame_config():
    config = RewardConfig(aggregation="log_tamed_released", log_tame_released_threshold="median")
    assert config.log_tame_released_threshold == "median"
    assert RewardConfig(aggregation="log_tamed_released", log_tame_released_threshold=0.2)
    with pytest.raises(ConfigError, match="should be mean, median or a number, got 'average'"):
        RewardConfig(aggregation="log_tamed_released", log_tame_released_threshold="average")
    with pytest.raises(ConfigError, match="the released function .* may tame every reward"):
        RewardConfig(aggregation="log_tamed_released", log_tame_rewards=("consistency",))


def test_a_run_with_the_released_log_tame_function(tiny_models, tmp_path):
    config = tiny_config(tiny_models["flux"], tmp_path / "run", rewards={"aggregation": "log_tamed_released"})
    metrics = _trainer(config).run_iteration(0)
    name = "toy_rewards:mean_brightness"
    assert f"rewards/{name}/log_tamed" in metrics and np.isfinite(metrics["advantages/mean"])


# --------------------------------------------------------------------- 2. edit sizes


def _wide_edit_rows(tmp_path):
    Image.new("RGB", (64, 32), (200, 120, 40)).save(tmp_path / "wide.png")
    rows = tmp_path / "edits.jsonl"
    rows.write_text(json.dumps({"image": "wide.png", "instruction": "make it blue"}) + "\n")
    return rows


@pytest.mark.parametrize("edit_size", ["aspect", "square"])
def test_square_edits_squash_the_original_and_the_judge_sees_it_squashed(edit_size, tiny_models, tmp_path):
    rows = _wide_edit_rows(tmp_path)
    config = tiny_config(
        tiny_models["flux-kontext"],
        tmp_path / "run",
        kind="flux-kontext",
        sampling={"edit_size": edit_size},
        data={"train_file": str(rows), "eval_fraction": 0.0},
    )
    trainer = _trainer(config)
    rollout = trainer.collect_rollouts(trainer.sampler.next_rows(1), step=0, sde_steps=(0, 1))[0]
    from paco_core.rl.rollout_rewards import score_micro_batch

    seen = []

    class Recording:
        def score(self, images, prompts, metadata):
            seen.extend(metadata)

    score_micro_batch(rollout, Recording())
    if edit_size == "square":  # the released trainers: 32 x 32 from a 64 x 32 original
        assert rollout.images[0].size == (32, 32) and rollout.cond.shared["condition_image"].size == (32, 32)
        assert seen[0]["judge_original_size"] == [32, 32]
    else:  # ours: the original's aspect at 32^2 area, judged against the original itself
        assert rollout.images[0].size == (48, 16)
        assert "judge_original_size" not in seen[0]


def test_the_edit_reward_squashes_the_original_when_asked(tiny_models, tmp_path, monkeypatch):
    from paco_core.reward import scoring
    from paco_core.rl.config import RewardSpec
    from paco_core.rl.rewards import RewardModels, RewardSet

    seen = []
    real = scoring.score_edits
    monkeypatch.setattr(
        scoring,
        "score_edits",
        lambda judge, originals, *a, **k: (
            seen.append([o.size for o in originals]) or real(judge, originals, *a, **k)
        ),
    )
    models = RewardModels(
        RewardConfig(rewards=(RewardSpec("edit"),), judge_path=str(tiny_models["judge"])), "cpu"
    )
    _wide_edit_rows(tmp_path)
    path = str(tmp_path / "wide.png")
    metadata = [{"image_path": path, "judge_original_size": [32, 32]}, {"image_path": path}]
    edited = [Image.new("RGB", (32, 32), "gray")] * 2
    scores = RewardSet.from_config([RewardSpec("edit")], models).score(edited, ["make it blue"] * 2, metadata)
    assert np.isfinite(scores.scores).all()
    assert seen == [[(32, 32), (64, 32)]]


# --------------------------------------------------------------------- 5. TF32


def test_tf32_is_switched_only_on_cuda():
    before = torch.backends.cuda.matmul.allow_tf32
    assert apply_tf32("cpu", True) is False and torch.backends.cuda.matmul.allow_tf32 == before


def test_the_released_presets_turn_tf32_on_and_recompute_the_old_log_prob():
    from paco_core.rl.presets import PRESETS, preset_config

    for name in PRESETS:
        optim = preset_config(name).optim
        assert (optim.allow_tf32, optim.old_log_prob) == (True, "recompute"), name
    defaults = config_from_dict(SamplingConfig, {})
    assert defaults.edit_size == "aspect"
    assert {preset_config(n).sampling.edit_size for n in ("edit-kontext", "edit-qwen")} == {"square"}
