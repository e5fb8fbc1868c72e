"""PaCo-GRPO math against direct computations: SDE log-prob, advantages, PPO loss, KL, EMA, micro-batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paco_core.errors import ConfigError, InputError, RewardError
from paco_core.rl.advantages import STD_EPS, compute_advantages
from paco_core.rl.ema import LoraEma
from paco_core.rl.loss import kl_std, kl_to_reference, policy_loss, ppo_clip_loss
from paco_core.rl.micro_batches import (
    accumulation_windows,
    check_processes_share_equally,
    plan_micro_batches,
    plans_of_process,
    split_windows,
)
from paco_core.rl.sde import ode_step, sde_std, sde_step


def _direct_mean_std(x, v, sigma, sigma_next, a, sigma_for_denominator):
    dt = sigma_next - sigma
    std_t = a * math.sqrt(sigma / (1 - sigma_for_denominator))
    mean = x * (1 + std_t**2 / (2 * sigma) * dt) + v * (1 + std_t**2 * (1 - sigma) / (2 * sigma)) * dt
    return mean, std_t * math.sqrt(-dt)


def test_sde_log_prob_matches_torch_normal_density():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 4, generator=generator, dtype=torch.float64)
    v = torch.randn(3, 8, 4, generator=generator, dtype=torch.float64)
    sigma, sigma_next, a = 0.8, 0.6, 0.7
    step = sde_step(x, v, sigma, sigma_next, noise_level=a, sigma_max=0.95, generator=generator)
    mean, std = _direct_mean_std(x, v, sigma, sigma_next, a, sigma)
    expected = torch.distributions.Normal(mean, std).log_prob(step.x_next.double()).mean(dim=(1, 2))
    assert step.log_prob.dtype == torch.float32
    torch.testing.assert_close(step.log_prob.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step.mean.double(), mean, rtol=1e-5, atol=1e-6)


def test_sde_scoring_a_given_transition_uses_that_sample():
    x, v = torch.zeros(2, 4, 2), torch.ones(2, 4, 2)
    target = torch.full((2, 4, 2), 0.3)
    step = sde_step(x, v, 0.5, 0.25, noise_level=1.0, sigma_max=0.9, x_next=target)
    mean, std = _direct_mean_std(x.double(), v.double(), 0.5, 0.25, 1.0, 0.5)
    expected = torch.distributions.Normal(mean, std).log_prob(target.double()).mean(dim=(1, 2))
    assert torch.equal(step.x_next, target)
    torch.testing.assert_close(step.log_prob.double(), expected, rtol=1e-5, atol=1e-5)


def test_sde_guard_at_sigma_one_uses_sigma_max():
    assert torch.isfinite(sde_std(torch.tensor(1.0), 0.7, 0.9))
    assert sde_std(torch.tensor(1.0), 0.7, 0.9).item() == pytest.approx(0.7 * math.sqrt(1.0 / 0.1))
    x, v = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    step = sde_step(
        x, v, 1.0, 0.9, noise_level=0.7, sigma_max=0.9, generator=torch.Generator().manual_seed(1)
    )
    mean, std = _direct_mean_std(x.double(), v.double(), 1.0, 0.9, 0.7, 0.9)
    torch.testing.assert_close(step.mean.double(), mean, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(step.log_prob).all()


def test_sde_in_bf16_latents_still_scores_in_fp32():
    x, v = torch.randn(2, 16, 8).to(torch.bfloat16), torch.randn(2, 16, 8).to(torch.bfloat16)
    step = sde_step(
        x, v, 0.7, 0.5, noise_level=1.0, sigma_max=0.9, generator=torch.Generator().manual_seed(0)
    )
    assert step.x_next.dtype == torch.bfloat16 and step.log_prob.dtype == torch.float32
    assert torch.isfinite(step.log_prob).all()


def test_ode_step_is_euler():
    x, v = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(ode_step(x, v, 0.8, 0.5), x + v * (0.5 - 0.8))


# --- advantages --------------------------------------------------------------------------

REWARDS = np.array([[0.9, 10.0], [0.5, 30.0], [0.7, 20.0], [0.2, 80.0], [0.4, 5.0], [0.6, 1.0]])
WEIGHTS = np.array([0.2, 1.0])
GROUPS = np.array([0, 0, 0, 1, 1, 1])


def _group_normalise(scores, groups, global_std=False):
    out = np.zeros_like(scores)
    for g in np.unique(groups):
        member = groups == g
        std = scores.std() if global_std else scores[member].std()
        out[member] = (scores[member] - scores[member].mean()) / (std + STD_EPS)
    return out


@pytest.mark.parametrize("global_std", [False, True])
def test_weighted_sum_matches_direct_computation(global_std):
    result = compute_advantages(
        REWARDS, WEIGHTS, GROUPS, aggregation="weighted_sum", global_std=global_std, clip_max=100
    )
    expected = _group_normalise(REWARDS @ WEIGHTS, GROUPS, global_std)
    np.testing.assert_allclose(result.values, expected, rtol=1e-10)
    assert result.valid.all()


def test_log_tamed_logs_only_rewards_with_high_variation():
    result = compute_advantages(
        REWARDS, WEIGHTS, GROUPS, aggregation="log_tamed", threshold=0.5, clip_max=100
    )
    cv = REWARDS.std(axis=0) / REWARDS.mean(axis=0)
    assert cv[0] < 0.5 < cv[1]
    adjusted = np.stack([REWARDS[:, 0], np.log1p(REWARDS[:, 1])], axis=1)
    np.testing.assert_allclose(result.cv_ratios, cv)
    assert result.tamed.tolist() == [False, True]
    np.testing.assert_allclose(result.values, _group_normalise(adjusted @ WEIGHTS, GROUPS), rtol=1e-10)


def test_log_tamed_threshold_zero_uses_mean_ratio():
    result = compute_advantages(
        REWARDS, WEIGHTS, GROUPS, aggregation="log_tamed", threshold=0.0, clip_max=100
    )
    cv = REWARDS.std(axis=0) / REWARDS.mean(axis=0)
    assert result.tamed.tolist() == (cv > cv.mean()).tolist()


def test_geometric_mean_matches_direct_computation():
    result = compute_advantages(REWARDS, WEIGHTS, GROUPS, aggregation="geometric_mean", clip_max=100)
    direct = np.exp((0.2 * np.log(REWARDS[:, 0]) + 1.0 * np.log(REWARDS[:, 1])) / 1.2)
    np.testing.assert_allclose(result.aggregated, direct, rtol=1e-12)
    np.testing.assert_allclose(result.values, _group_normalise(direct, GROUPS), rtol=1e-10)


def test_geometric_mean_rejects_non_positive_rewards():
    with pytest.raises(RewardError, match="geometric_mean.*positive rewards"):
        compute_advantages(np.array([[0.0], [1.0]]), [1.0], [0, 0], aggregation="geometric_mean")


def test_advantage_sum_normalises_each_reward_separately():
    result = compute_advantages(REWARDS, WEIGHTS, GROUPS, aggregation="advantage_sum", clip_max=100)
    expected = 0.2 * _group_normalise(REWARDS[:, 0], GROUPS) + 1.0 * _group_normalise(REWARDS[:, 1], GROUPS)
    np.testing.assert_allclose(result.values, expected, rtol=1e-10)


def test_advantages_are_clipped():
    rewards = np.array([[0.0]] * 99 + [[1.0]])
    result = compute_advantages(
        rewards, [1.0], np.zeros(100, dtype=int), aggregation="weighted_sum", clip_max=5.0
    )
    assert result.values.max() == 5.0
    assert _group_normalise(rewards[:, 0], np.zeros(100)).max() > 5.0


def test_invalid_samples_are_excluded_not_zero():
    rewards = np.array([[1.0], [np.nan], [3.0], [2.0], [np.nan], [4.0]])
    result = compute_advantages(rewards, [1.0], GROUPS, aggregation="weighted_sum", clip_max=100)
    assert result.valid.tolist() == [True, False, True, True, False, True]
    assert result.values[1] == 0 and result.values[4] == 0
    expected = _group_normalise(np.array([1.0, 3.0, 2.0, 4.0]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(result.values[result.valid], expected, rtol=1e-10)


def test_group_with_one_valid_sample_is_dropped():
    rewards = np.array([[1.0], [np.nan], [3.0], [5.0]])
    result = compute_advantages(rewards, [1.0], [0, 0, 1, 1], aggregation="weighted_sum")
    assert result.valid.tolist() == [False, False, True, True]


def test_mismatched_shapes_raise():
    with pytest.raises(InputError, match="2 reward columns but 1 weights"):
        compute_advantages(np.ones((2, 2)), [1.0], [0, 0])
    with pytest.raises(InputError, match="aggregation should be one of"):
        compute_advantages(np.ones((2, 1)), [1.0], [0, 0], aggregation="median")


# --- loss --------------------------------------------------------------------------------


def test_ppo_ratio_is_one_on_policy_and_loss_is_minus_mean_advantage():
    log_prob = torch.tensor([-1.0, -2.0, -0.5])
    advantages = torch.tensor([1.0, -2.0, 0.5])
    terms = ppo_clip_loss(log_prob, log_prob.clone(), advantages, clip_range=1e-4)
    assert torch.equal(terms.ratio, torch.ones(3))
    assert terms.loss.item() == pytest.approx(-advantages.mean().item())
    assert terms.clipped.sum() == 0


def test_ppo_clip_matches_direct_formula():
    new, old = torch.tensor([0.0, 0.0, 0.0, 0.0]), torch.tensor([-0.5, 0.5, -0.5, 0.5])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    eps = 0.2
    terms = ppo_clip_loss(new, old, advantages, eps)
    r = np.exp(np.array([0.5, -0.5, 0.5, -0.5]))
    a = advantages.numpy()
    direct = np.maximum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps)).mean()
    assert terms.loss.item() == pytest.approx(direct, rel=1e-6)
    assert terms.clipped.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_masked_samples_do_not_count():
    new = torch.tensor([0.0, 0.0]).requires_grad_()
    terms = policy_loss(
        new, torch.zeros(2), torch.tensor([1.0, 100.0]), clip_range=0.2, mask=torch.tensor([True, False])
    )
    assert terms.total.item() == pytest.approx(-1.0)
    terms.total.backward()
    assert new.grad[1] == 0


def test_kl_matches_gaussian_kl_of_equal_std():
    mean, reference, std = torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.tensor(0.3)
    direct = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std), torch.distributions.Normal(reference, std)
    ).mean(dim=(1, 2))
    torch.testing.assert_close(kl_to_reference(mean, reference, std), direct)
    terms = policy_loss(
        torch.zeros(2),
        torch.zeros(2),
        torch.zeros(2),
        clip_range=0.1,
        kl_beta=0.5,
        mean=mean,
        reference_mean=reference,
        std=std,
    )
    assert terms.total.item() == pytest.approx(0.5 * direct.mean().item(), rel=1e-5)


def test_kl_without_reference_means_is_refused():
    with pytest.raises(InputError, match="kl_beta > 0 needs mean, reference_mean and std"):
        policy_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), clip_range=0.1, kl_beta=0.5)


# --- EMA ---------------------------------------------------------------------------------


def test_ema_decay_rule_interval_and_swap():
    param = torch.nn.Parameter(torch.zeros(3))
    ema = LoraEma([("w", param)], max_decay=0.9, update_every=2)
    assert ema.decay(0) == pytest.approx(0.1) and ema.decay(1000) == 0.9
    with torch.no_grad():
        param.fill_(1.0)
    assert not ema.maybe_update(1)
    assert ema.maybe_update(2)
    decay = 3 / 12
    torch.testing.assert_close(ema.shadow["w"], torch.full((3,), 1 - decay))
    with ema.swapped_in():
        torch.testing.assert_close(param.detach(), torch.full((3,), 1 - decay))
    assert torch.equal(param.detach(), torch.ones(3))
    restored = LoraEma([("w", param)], max_decay=0.9, update_every=2)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow["w"], ema.shadow["w"])


def test_micro_batches_cover_each_group_and_are_dealt_round_robin():
    plans = plan_micro_batches(num_rows=2, group_size=4, batch_size=2)
    assert [(p.index, p.group, p.sample_ids) for p in plans] == [
        (0, 0, [0, 1]),
        (1, 0, [2, 3]),
        (2, 1, [4, 5]),
        (3, 1, [6, 7]),
    ]
    assert [p.index for p in plans_of_process(plans, num_processes=2, process_index=1)] == [1, 3]
    check_processes_share_equally(4, 2)
    with pytest.raises(
        ConfigError, match="3 micro-batches per step .* cannot be shared equally by 2 processes"
    ):
        check_processes_share_equally(3, 2)


@pytest.mark.parametrize(
    "count, steps, windows",
    [(3, 2, [[0, 1], [2]]), (4, 2, [[0, 1], [2, 3]]), (2, 1, [[0], [1]]), (2, 5, [[0, 1]]), (0, 2, [])],
)
def test_accumulation_windows_end_with_a_shorter_one(count, steps, windows):
    assert accumulation_windows(count, steps) == windows


# --- fidelity to the released trainer: KL form, EMA cadence, optimizer steps ------------


def test_kl_forms_against_direct_computation():
    # flow_grpo: ||mean - mean_ref||^2 / (2 std_t^2) with std_t = a sqrt(sigma / (1 - sigma)), as
    # Flow-GRPO and the released PaCo-GRPO; exact: the KL of the two Gaussian SDE steps.
    generator = torch.Generator().manual_seed(3)
    x, v, v_ref = (torch.randn(2, 6, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    sigma, sigma_next, a = 0.75, 0.5, 0.9
    step = sde_step(x, v, sigma, sigma_next, noise_level=a, sigma_max=0.98, generator=generator)
    reference = sde_step(x, v_ref, sigma, sigma_next, noise_level=a, sigma_max=0.98, x_next=step.x_next)
    std_t, dt = a * math.sqrt(sigma / (1 - sigma)), sigma_next - sigma
    squared = ((step.mean.double() - reference.mean.double()) ** 2).mean(dim=(1, 2))
    flow_grpo = kl_to_reference(step.mean, reference.mean, kl_std(step.std_t, step.std, "flow_grpo"))
    torch.testing.assert_close(flow_grpo.double(), squared / (2 * std_t**2), rtol=1e-5, atol=1e-7)
    exact = kl_to_reference(step.mean, reference.mean, kl_std(step.std_t, step.std, "exact"))
    gaussian = torch.distributions.kl_divergence(
        torch.distributions.Normal(step.mean.double(), std_t * math.sqrt(-dt)),
        torch.distributions.Normal(reference.mean.double(), std_t * math.sqrt(-dt)),
    ).mean(dim=(1, 2))
    torch.testing.assert_close(exact.double(), gaussian, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(exact * -dt, flow_grpo, rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="kl form should be one of flow_grpo, exact"):
        kl_std(step.std_t, step.std, "reverse")


def test_released_ema_cadence_counts_optimizer_steps_and_applies_per_micro_batch():
    param = torch.nn.Parameter(torch.zeros(2))
    ema = LoraEma([("w", param)], max_decay=0.9, update_every=8)
    shadow = LoraEma([("w", param)], max_decay=0.9, update_every=8)  # shadows start at 0
    with torch.no_grad():
        param.fill_(1.0)
    # the released EMAModuleWrapper.step: update when (g + 1) % 8 == 0 with decay(g)
    assert [g for g in range(24) if ema.maybe_update_released(g)] == [7, 15, 23]
    # three micro-batches that see the same count apply the same decay three times: decay(g)**3
    for _ in range(3):
        assert shadow.maybe_update_released(7)
    torch.testing.assert_close(shadow.shadow["w"], torch.full((2,), 1 - ema.decay(7) ** 3))


@pytest.mark.parametrize(
    "count, steps, windows",
    [(4, 2, [[0, 1], [2, 3]]), (5, 2, [[0, 1, 2], [3, 4]]), (3, 3, [[0], [1], [2]]), (84, 2, None)],
)
def test_split_windows_gives_the_asked_number_of_near_equal_steps(count, steps, windows):
    got = split_windows(count, steps)
    assert len(got) == steps and [i for w in got for i in w] == list(range(count))
    assert max(map(len, got)) - min(map(len, got)) <= 1
    if windows is not None:
        assert got == windows


def test_split_windows_refuses_more_steps_than_micro_batches():
    with pytest.raises(ConfigError, match="optimizer_steps_per_iteration is 3 but a process has only 2"):
        split_windows(2, 3)


def test_log_taming_can_be_limited_to_named_rewards():
    rng = np.random.default_rng(5)
    rewards = np.column_stack([rng.uniform(0.0, 2.0, 8), rng.uniform(0.0, 2.0, 8), rng.uniform(0.9, 1.0, 8)])
    groups = np.repeat([0, 1], 4)
    weights = [0.2, 1.0, 1.0]
    limited = compute_advantages(rewards, weights, groups, threshold=0.2, tameable=[True, False, False])
    assert limited.cv_ratios[0] > 0.2 and limited.cv_ratios[1] > 0.2 and limited.cv_ratios[2] < 0.2
    assert limited.tamed.tolist() == [True, False, False]
    direct = 0.2 * np.log1p(rewards[:, 0]) + rewards[:, 1] + rewards[:, 2]
    np.testing.assert_allclose(limited.aggregated, direct)
    everything = compute_advantages(rewards, weights, groups, threshold=0.2)
    assert everything.tamed.tolist() == [True, True, False]
