"""The Flow-GRPO SDE step of flow matching and its Gaussian log-probability.

With ``sigma`` the current noise level, ``sigma_next`` the next one (``dt = sigma_next -
sigma < 0``), ``v`` the velocity and ``a`` the noise level:

    std_t  = a * sqrt(sigma / (1 - sigma))           (sigma == 1 uses sigma_max instead)
    mean   = x * (1 + std_t^2 / (2 sigma) * dt) + v * (1 + std_t^2 (1 - sigma) / (2 sigma)) * dt
    x_next = mean + std_t * sqrt(-dt) * eps
    log p  = log N(x_next; mean, (std_t sqrt(-dt))^2), averaged over all non-batch dims

Everything is computed in float32 (bf16 overflows in these terms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class SdeStep:
    """One SDE transition. Shapes: ``x_next``/``mean`` like the latents ``(B, ...)``;
    ``log_prob`` ``(B,)``; ``std`` the scalar std of the transition (std_t * sqrt(-dt));
    ``std_t`` the scalar a * sqrt(sigma / (1 - sigma)) (what Flow-GRPO's KL divides by)."""

    x_next: torch.Tensor
    mean: torch.Tensor
    log_prob: torch.Tensor
    std: torch.Tensor
    std_t: torch.Tensor


def sde_std(sigma: torch.Tensor, noise_level: float, sigma_max: float) -> torch.Tensor:
    """std_t = a * sqrt(sigma / (1 - sigma)), with sigma_max in the denominator at sigma == 1."""
    sigma = sigma.to(torch.float32)
    denominator_sigma = torch.where(sigma >= 1.0, torch.as_tensor(sigma_max, dtype=torch.float32), sigma)
    return noise_level * torch.sqrt(sigma / (1.0 - denominator_sigma))


def ode_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Euler step of the flow ODE, computed in float32 and returned in ``x``'s dtype."""
    dt = sigma_next - sigma
    return (x.to(torch.float32) + velocity.to(torch.float32) * dt).to(x.dtype)


def sde_step(
    x: torch.Tensor,
    velocity: torch.Tensor,
    sigma: float,
    sigma_next: float,
    *,
    noise_level: float,
    sigma_max: float,
    x_next: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SdeStep:
    """Take (or score) one SDE step.

    Args:
        x: latents at ``sigma``, ``(B, ...)``.
        velocity: the model's velocity at ``x``, same shape.
        sigma, sigma_next: current and next noise level (``sigma_next < sigma``).
        noise_level: ``a``.
        sigma_max: used instead of sigma in ``1 - sigma`` when sigma == 1 (take the
            schedule's first sigma below 1).
        x_next: when given, score this transition instead of sampling one (training).
        generator: noise generator for sampling (eps drawn on the CPU, then moved, so the
            noise does not depend on the device).

    Returns:
        SdeStep with x_next (in ``x``'s dtype), mean and log_prob (float32).
    """
    x32 = x.to(torch.float32)
    v32 = velocity.to(torch.float32)
    sigma_t = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    dt = float(sigma_next) - float(sigma)
    std_t = sde_std(sigma_t, noise_level, sigma_max).to(x.device)
    mean = (
        x32 * (1 + std_t**2 / (2 * sigma_t) * dt) + v32 * (1 + std_t**2 * (1 - sigma_t) / (2 * sigma_t)) * dt
    )
    std = std_t * math.sqrt(-dt)
    if x_next is None:
        eps = torch.randn(x.shape, generator=generator, dtype=torch.float32, device="cpu").to(x.device)
        x_next = (mean + std * eps).to(x.dtype)
    log_prob = gaussian_log_prob(x_next.to(torch.float32), mean, std)
    return SdeStep(x_next=x_next, mean=mean, log_prob=log_prob, std=std, std_t=std_t)


def gaussian_log_prob(sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(sample; mean, std^2) averaged over non-batch dims -> ``(B,)``."""
    log_density = -((sample - mean) ** 2) / (2 * std**2) - torch.log(std) - LOG_SQRT_2PI
    return log_density.mean(dim=tuple(range(1, sample.ndim)))
