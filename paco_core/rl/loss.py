"""The PPO clip objective on SDE log-probabilities, with the optional KL to the reference.

ratio = exp(logp_new - logp_old)
loss  = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))
kl    = mean over non-batch dims of (mean - mean_ref)^2 / (2 s^2)     (per image)
total = loss + beta * mean(kl)

The KL's ``s`` (``optim.kl_form``, :func:`kl_std`): ``flow_grpo`` (the default) divides by
std_t = a * sqrt(sigma / (1 - sigma)), as Flow-GRPO and the released PaCo-GRPO do, so their
beta values mean the same here; ``exact`` divides by the std of the SDE transition,
std_t * sqrt(-dt), which makes it the exact KL between the two Gaussian steps (the
``flow_grpo`` value divided by -dt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paco_core.errors import InputError


@dataclass
class PolicyLoss:
    """Loss terms of one micro-batch; ``ratio`` is ``(B,)`` and detached."""

    total: torch.Tensor
    policy: torch.Tensor
    kl: torch.Tensor
    ratio: torch.Tensor
    clip_fraction: torch.Tensor


@dataclass
class PpoTerms:
    """``loss`` scalar; ``ratio`` and ``clipped`` (1.0 where |ratio - 1| > eps) are ``(B,)``."""

    loss: torch.Tensor
    ratio: torch.Tensor
    clipped: torch.Tensor


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``(B,)`` values over the entries where ``mask`` is true (0 when none is)."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def ppo_clip_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    mask: torch.Tensor | None = None,
) -> PpoTerms:
    """PPO clip loss. All inputs ``(B,)``; ``mask`` excludes samples (invalid rewards)."""
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    was_clipped = (torch.abs(ratio - 1.0) > clip_range).to(torch.float32)
    return PpoTerms(loss=loss, ratio=ratio, clipped=was_clipped)


KL_FORMS = ("flow_grpo", "exact")


def kl_std(std_t: torch.Tensor, transition_std: torch.Tensor, form: str) -> torch.Tensor:
    """The ``s`` of the KL: ``std_t`` for ``flow_grpo``, the transition std for ``exact``."""
    if form == "flow_grpo":
        return std_t
    if form == "exact":
        return transition_std
    raise InputError(f"kl form should be one of {', '.join(KL_FORMS)}, got {form!r}")


def kl_to_reference(mean: torch.Tensor, reference_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(B,)`` KL between two Gaussians of equal std: ||mean - mean_ref||^2 / (2 std^2), averaged."""
    squared = (mean - reference_mean) ** 2
    return squared.mean(dim=tuple(range(1, mean.ndim))) / (2 * std**2)


def policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    *,
    clip_range: float,
    kl_beta: float = 0.0,
    mean: torch.Tensor | None = None,
    reference_mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> PolicyLoss:
    """PPO clip loss plus ``kl_beta`` times the KL to the reference (when ``kl_beta`` > 0)."""
    ppo = ppo_clip_loss(log_prob, old_log_prob, advantages, clip_range, mask)
    if kl_beta > 0:
        if mean is None or reference_mean is None or std is None:
            raise InputError(
                "policy_loss: kl_beta > 0 needs mean, reference_mean and std (the SDE means with and without the LoRA)"
            )
        kl = masked_mean(kl_to_reference(mean, reference_mean, std), mask)
        total = ppo.loss + kl_beta * kl
    else:
        kl = torch.zeros((), device=log_prob.device)
        total = ppo.loss
    return PolicyLoss(
        total=total,
        policy=ppo.loss.detach(),
        kl=kl.detach(),
        ratio=ppo.ratio.detach(),
        clip_fraction=masked_mean(ppo.clipped, mask),
    )
