"""The first PPO ratio under both sources of the old log-prob, measured without training.

At the first step of an update the policy still has the weights that sampled, so the ratio
exp(logp_new - logp_old) should be exactly 1. With ``optim.old_log_prob`` rollout the old
log-prob was stored while sampling (inference mode, the rollout's attention kernels); the
update scores under the training kernels (:func:`~paco_core.rl.device_contexts.training_attention`),
and in bf16 the two can differ by more than the clip range (1e-4), which clips the first step.
With ``recompute`` both come from the same code path. :func:`measure_first_ratio` rolls out
one micro-batch and reports both, for the GPU validation script and the tests.

Example:
    >>> ratios = measure_first_ratio(trainer)  # doctest: +SKIP
    >>> ratios["recompute"].max_deviation  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from paco_core.rl.device_contexts import training_attention
from paco_core.rl.update import FrozenLora

OLD_LOG_PROB_MODES = ("rollout", "recompute")


@dataclass(frozen=True)
class FirstRatio:
    """The first step's ratios of one micro-batch (first trained SDE step) under one mode."""

    mode: str
    """``rollout`` (old log-prob stored while sampling) or ``recompute`` (through the frozen LoRA)."""
    ratio_mean: float
    max_deviation: float
    """max |ratio - 1| over the micro-batch's images."""
    clipped_share: float
    """Share of the images whose ratio is outside 1 +- clip_range (their gradient may be cut)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_first_ratio(trainer: Any, *, step: int = 0) -> dict[str, FirstRatio]:
    """Roll out the first micro-batch of one prompt and score its first trained transition
    as the update's first step would, with the old log-prob from each source.

    Args:
        trainer: a :class:`~paco_core.rl.trainer.GrpoTrainer` after ``setup()`` (pipeline,
            LoRA, data and updater ready); its LoRA, optimizer and data order are not changed.
        step: the iteration whose seeds the rollout uses.

    Returns:
        ``{"rollout": FirstRatio, "recompute": FirstRatio}``.
    """
    updater = trainer.updater
    clip_range = trainer.config.optim.clip_range
    row = trainer.sampler.rows[0]
    sde_steps = trainer.choose_sde_steps(step)
    rollout = trainer.collect_rollouts([row], step, sde_steps)[0]
    updater.transformer.train()
    frozen = FrozenLora(updater.parameters)  # the weights that just sampled
    with training_attention(trainer.accelerator.device):
        with torch.no_grad(), frozen.swapped_in():
            recomputed = updater.score_transition(rollout, 0).log_prob
        current = updater.score_transition(rollout, 0).log_prob.detach()  # with grad, as the update runs it
    stored = rollout.log_probs[0].to(current.device)
    return {
        "rollout": _summary("rollout", current - stored, clip_range),
        "recompute": _summary("recompute", current - recomputed, clip_range),
    }


def _summary(mode: str, log_ratio: torch.Tensor, clip_range: float) -> FirstRatio:
    ratio = torch.exp(log_ratio.double())
    deviation = (ratio - 1).abs()
    return FirstRatio(
        mode=mode,
        ratio_mean=float(ratio.mean()),
        max_deviation=float(deviation.max()),
        clipped_share=float((deviation > clip_range).double().mean()),
    )
