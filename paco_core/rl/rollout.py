"""Sampling with log-probabilities: Euler (ODE) steps, and SDE steps at the noise steps.

A :class:`Rollout` is one micro-batch of images of one prompt row. It keeps, for every
trained SDE step k (``sampling.trained_steps``: by default every noise step), the latents
before the step, the sampled latents after it and the fp32 log-probability of that
transition: everything the PPO update needs to re-score the same transitions under the
current policy. Noise steps that are not trained are sampled with the SDE but not kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from paco_core.rl.data import PromptRow
from paco_core.rl.device_contexts import AutocastFactory
from paco_core.rl.rollout_adapters import Conditioning, RolloutAdapter, Schedule
from paco_core.rl.sde import ode_step, sde_step


@dataclass
class Rollout:
    """Shapes: ``latents``/``next_latents`` ``(K, B, seq, C)``, ``log_probs`` ``(K, B)`` (fp32),
    K = len(trained_steps), B = len(sample_ids)."""

    row: PromptRow
    group: int
    sample_ids: list[int]
    height: int
    width: int
    cond: Conditioning
    schedule: Schedule
    sde_steps: tuple[int, ...]
    latents: torch.Tensor
    next_latents: torch.Tensor
    log_probs: torch.Tensor
    images: list = field(default_factory=list)
    trained_steps: tuple[int, ...] = ()
    """The SDE steps whose transitions are kept (and trained), in order."""
    judge_original_size: tuple[int, int] | None = None
    """(width, height) the edit reward squashes the original to (``sampling.edit_size`` square); None = its own size."""

    def __post_init__(self) -> None:
        if not self.trained_steps:
            self.trained_steps = tuple(self.sde_steps)


@dataclass
class SampleOutput:
    final_latents: torch.Tensor
    latents: torch.Tensor
    next_latents: torch.Tensor
    log_probs: torch.Tensor


@torch.no_grad()
def sample_with_log_probs(
    rollout_adapter: RolloutAdapter,
    transformer: Any,
    cond: Conditioning,
    schedule: Schedule,
    initial_latents: torch.Tensor,
    *,
    sde_steps: Sequence[int],
    noise_level: float,
    generator: torch.Generator,
    autocast: AutocastFactory = contextlib.nullcontext,
    trained_steps: Sequence[int] | None = None,
) -> SampleOutput:
    """Run the sampler from ``initial_latents`` ``(B, seq, C)``; SDE at ``sde_steps``, ODE elsewhere.

    Returns:
        SampleOutput with the final latents and, stacked over the ``trained_steps`` (default:
        every SDE step) in order, the latents before / after each step and its log-probability ``(K, B)``.
    """
    kept = tuple(sde_steps) if trained_steps is None else tuple(trained_steps)
    latents = initial_latents
    before, after, log_probs = [], [], []
    for index, timestep in enumerate(schedule.timesteps):
        sigma, sigma_next = schedule.sigmas[index], schedule.sigmas[index + 1]
        with autocast():
            velocity = rollout_adapter.velocity(transformer, latents, timestep, cond)
        if index in sde_steps:
            step = sde_step(
                latents,
                velocity,
                sigma,
                sigma_next,
                noise_level=noise_level,
                sigma_max=schedule.sigma_max,
                generator=generator,
            )
            if index in kept:
                before.append(latents)
                after.append(step.x_next)
                log_probs.append(step.log_prob)
            latents = step.x_next
        else:
            latents = ode_step(latents, velocity, sigma, sigma_next)
    empty = latents.new_zeros((0, *latents.shape))
    return SampleOutput(
        final_latents=latents,
        latents=torch.stack(before) if before else empty,
        next_latents=torch.stack(after) if after else empty,
        log_probs=torch.stack(log_probs) if log_probs else torch.zeros(0, latents.shape[0]),
    )


def rollout_micro_batch(
    rollout_adapter: RolloutAdapter,
    transformer: Any,
    row: PromptRow,
    *,
    group: int,
    sample_ids: list[int],
    height: int,
    width: int,
    num_steps: int,
    sde_steps: Sequence[int],
    noise_level: float,
    generator: torch.Generator,
    cond: Conditioning | None = None,
    autocast: AutocastFactory = contextlib.nullcontext,
    trained_steps: Sequence[int] | None = None,
) -> Rollout:
    """Encode (unless ``cond`` is given), sample and decode one micro-batch of a row.

    The initial noise and every SDE noise come from ``generator`` (a CPU generator), so a
    micro-batch is reproducible from its seed on any device and any rank.
    """
    cond = cond if cond is not None else rollout_adapter.encode(row, height, width)
    schedule = rollout_adapter.schedule(num_steps, height, width)
    initial = rollout_adapter.initial_noise(len(sample_ids), height, width, generator)
    output = sample_with_log_probs(
        rollout_adapter,
        transformer,
        cond,
        schedule,
        initial,
        sde_steps=tuple(sde_steps),
        noise_level=noise_level,
        generator=generator,
        autocast=autocast,
        trained_steps=trained_steps,
    )
    images = rollout_adapter.decode(output.final_latents, height, width)
    return Rollout(
        row=row,
        group=group,
        sample_ids=list(sample_ids),
        height=height,
        width=width,
        cond=cond,
        schedule=schedule,
        sde_steps=tuple(sde_steps),
        latents=output.latents,
        next_latents=output.next_latents,
        log_probs=output.log_probs,
        images=images,
        trained_steps=tuple(sde_steps) if trained_steps is None else tuple(trained_steps),
    )


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys (seed, step, micro-batch ...)."""
    import numpy as np

    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device="cpu").manual_seed(seed)
