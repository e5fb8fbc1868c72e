"""The PPO update of the LoRA over one iteration's rollouts.

For every micro-batch this process rolled out and every trained SDE step k of it, the stored
transition (latents -> next latents) is re-scored under the current policy; the PPO clip
loss (plus ``kl_beta`` times the KL to the LoRA-free reference) is back-propagated.

The ratio's old log-prob (``optim.old_log_prob``): ``rollout`` takes the one stored while
sampling (Flow-GRPO); ``recompute`` scores the same transition again, without gradient,
through a frozen copy of the LoRA taken when the update starts (:class:`FrozenLora`, the
released trainers' "old" adapter), on exactly the code path of the current policy's score
(same module, autocast and attention kernels), so the first ratio is exactly 1 even where
the rollout ran under other kernels (a GPU's inference vs training attention). The
micro-batches are grouped into accumulation windows (:func:`accumulation_windows`, or
``optim.optimizer_steps_per_iteration`` near-equal windows per pass,
:func:`split_windows`): each optimizer step's gradient is the mean over the micro-batches
and SDE steps of its window.

Under several processes the gradients are averaged across processes (DDP all-reduce) only
once per window, on its last backward pass: the others run under ``no_sync`` and only
accumulate locally. The averaged sum is the same; the communication is one all-reduce
per optimizer step instead of one per backward pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from paco_core.errors import TrainingError
from paco_core.rl.advantages import Advantages
from paco_core.rl.config import TrainConfig
from paco_core.rl.device_contexts import autocast_factory, training_attention
from paco_core.rl.loss import PolicyLoss, kl_std, policy_loss
from paco_core.rl.micro_batches import accumulation_windows, split_windows
from paco_core.rl.rollout import Rollout
from paco_core.rl.rollout_adapters import RolloutAdapter
from paco_core.rl.sde import sde_step
from paco_core.rl.sharding import full_tensor


class PolicyUpdater:
    """Applies PPO updates to the trainable (LoRA) parameters.

    Args:
        config: the run (``sampling.noise_level`` and the ``optim`` section are read).
        rollout_adapter: the rollout adapter of the pipeline kind (calls the transformer).
        transformer: the transformer with its adapter (the reference = adapter disabled).
        train_model: the same transformer as prepared by accelerate (DDP-wrapped when distributed).
        optimizer: the prepared optimizer over ``named_trainable``.
        named_trainable: ``(name, parameter)`` of the LoRA.
        accelerator: the ``accelerate.Accelerator`` (backward, gradient clipping).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        rollout_adapter: RolloutAdapter,
        transformer: Any,
        train_model: Any,
        optimizer: Any,
        named_trainable: list[tuple[str, torch.nn.Parameter]],
        accelerator: Any,
    ):
        self.config = config
        self.rollout_adapter = rollout_adapter
        self.transformer = transformer
        self.train_model = train_model
        self.optimizer = optimizer
        self.parameters = [p for _, p in named_trainable]
        self.accelerator = accelerator
        self.autocast = autocast_factory(accelerator.device, config.optim.mixed_precision)
        self.sync_every_backward = False
        """True: all-reduce after every backward pass (the former behaviour; for benches and tests)."""
        self.optimizer_steps = 0
        """Optimizer steps taken in the run so far (saved with checkpoints by the trainer)."""
        self.frozen: FrozenLora | None = None
        """``optim.old_log_prob`` recompute: the LoRA as it was when the running update started."""

    def windows(self, num_micro_batches: int) -> list[list[int]]:
        """The accumulation windows of one iteration's passes (positions into the passes)."""
        optim = self.config.optim
        if not optim.optimizer_steps_per_iteration:
            return accumulation_windows(
                num_micro_batches * optim.num_inner_epochs, optim.gradient_accumulation_steps
            )
        return [
            [epoch * num_micro_batches + position for position in window]
            for epoch in range(optim.num_inner_epochs)
            for window in split_windows(num_micro_batches, optim.optimizer_steps_per_iteration)
        ]

    def update(
        self,
        rollouts: list[Rollout],
        advantages: Advantages,
        *,
        step: int,
        after_micro_batch: Callable[[int], None] | None = None,
    ) -> dict[str, float]:
        """PPO update over this process's micro-batches (``num_inner_epochs`` passes).

        Args:
            rollouts: this process's micro-batches, in plan order.
            advantages: of the whole iteration, indexed by sample id.
            step: the training step (for error messages).
            after_micro_batch: called after every micro-batch (after the optimizer step when it
                closes a window) with the run's optimizer-step count (the released EMA cadence).

        Returns:
            The ``policy/*`` metrics.
        """
        optim = self.config.optim
        self.transformer.train()
        self.freeze_old_policy()
        values = torch.from_numpy(advantages.values).to(torch.float32)
        valid = torch.from_numpy(advantages.valid)
        passes = [rollout for _ in range(optim.num_inner_epochs) for rollout in rollouts]
        terms: list[PolicyLoss] = []
        grad_norms = []
        for window in self.windows(len(rollouts)):
            for position in window:
                rollout = passes[position]
                ids = torch.tensor(rollout.sample_ids)
                batch_adv = values[ids].to(self.accelerator.device)
                batch_mask = valid[ids].to(self.accelerator.device)
                scale = len(rollout.trained_steps) * len(window)  # mean over the window's trained transitions
                for k in range(len(rollout.trained_steps)):
                    last = position == window[-1] and k == len(rollout.trained_steps) - 1
                    with training_attention(self.accelerator.device), self.gradient_sync(last):
                        loss = self.micro_batch_loss(rollout, k, batch_adv, batch_mask)
                        self.accelerator.backward(loss.total / scale)
                    terms.append(dataclasses.replace(loss, total=loss.total.detach()))
                if position == window[-1]:
                    grad_norms.append(self.optimizer_step(step))
                if after_micro_batch is not None:
                    after_micro_batch(self.optimizer_steps)
        return update_metrics(terms, grad_norms)

    def freeze_old_policy(self) -> None:
        """``optim.old_log_prob`` recompute: copy the LoRA as it is now (the policy that sampled)."""
        if self.config.optim.old_log_prob != "recompute":
            return
        if self.frozen is None:
            self.frozen = FrozenLora(self.parameters)
        self.frozen.refresh()

    def old_log_prob(self, rollout: Rollout, k: int) -> torch.Tensor:
        """``(B,)`` the ratio's old log-prob of transition ``k``: stored at rollout, or recomputed
        through the frozen LoRA on the same code path as :meth:`score_transition`."""
        if self.config.optim.old_log_prob != "recompute":
            return rollout.log_probs[k]
        if self.frozen is None:
            raise TrainingError("internal: old_log_prob recompute before update() froze the LoRA")
        with torch.no_grad(), self.frozen.swapped_in():
            return self.score_transition(rollout, k).log_prob

    def score_transition(self, rollout: Rollout, k: int):
        """The SDE step of trained transition ``k`` under the LoRA now in the transformer (an
        :class:`~paco_core.rl.sde.SdeStep` scoring the stored next latents)."""
        sampling = self.config.sampling
        index = rollout.trained_steps[k]
        sigma, sigma_next = rollout.schedule.sigmas[index], rollout.schedule.sigmas[index + 1]
        timestep = rollout.schedule.timesteps[index]
        latents, next_latents = rollout.latents[k], rollout.next_latents[k]
        with self.autocast():
            velocity = self.rollout_adapter.velocity(self.train_model, latents, timestep, rollout.cond)
        return sde_step(
            latents,
            velocity,
            sigma,
            sigma_next,
            noise_level=sampling.noise_level,
            sigma_max=rollout.schedule.sigma_max,
            x_next=next_latents,
        )

    def micro_batch_loss(
        self, rollout: Rollout, k: int, advantages: torch.Tensor, mask: torch.Tensor
    ) -> PolicyLoss:
        """Re-score trained transition ``k`` of a micro-batch under the current policy.

        Args:
            rollout: the micro-batch.
            k: index into ``rollout.trained_steps``.
            advantages / mask: ``(B,)`` advantages and validity of its samples.
        """
        sampling, optim = self.config.sampling, self.config.optim
        index = rollout.trained_steps[k]
        sigma, sigma_next = rollout.schedule.sigmas[index], rollout.schedule.sigmas[index + 1]
        timestep = rollout.schedule.timesteps[index]
        latents, next_latents = rollout.latents[k], rollout.next_latents[k]
        old_log_prob = self.old_log_prob(rollout, k)  # before the graph: the frozen swap writes the weights
        step = self.score_transition(rollout, k)
        reference_mean = None
        if optim.kl_beta > 0:
            with torch.no_grad(), self.adapter_disabled(), self.autocast():
                reference_velocity = self.rollout_adapter.velocity(
                    self.transformer, latents, timestep, rollout.cond
                )
            reference_mean = sde_step(
                latents,
                reference_velocity,
                sigma,
                sigma_next,
                noise_level=sampling.noise_level,
                sigma_max=rollout.schedule.sigma_max,
                x_next=next_latents,
            ).mean
        return policy_loss(
            step.log_prob,
            old_log_prob,
            advantages,
            clip_range=optim.clip_range,
            kl_beta=optim.kl_beta,
            mean=step.mean,
            reference_mean=reference_mean,
            std=kl_std(step.std_t, step.std, optim.kl_form),
            mask=mask,
        )

    def optimizer_step(self, step: int) -> float:
        """Clip the accumulated gradient, step the optimizer, clear the gradient; returns its norm."""
        max_norm = self.config.optim.max_grad_norm
        if max_norm > 0:
            norm = float(full_tensor(self.accelerator.clip_grad_norm_(self.parameters, max_norm)))
        else:
            norm = float(
                torch.norm(
                    torch.stack([full_tensor(p.grad.norm()) for p in self.parameters if p.grad is not None])
                )
            )
        if not math.isfinite(norm):
            raise TrainingError(
                f"the gradient norm is {norm} at step {step}: training diverged; lower optim.lr or "
                "use bf16 autocast only on GPU"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        return norm

    def gradient_sync(self, last_of_window: bool) -> contextlib.AbstractContextManager:
        """No cross-process gradient sync on a backward pass that does not close its window."""
        if last_of_window or self.sync_every_backward or self.accelerator.num_processes == 1:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(self.train_model)

    @contextlib.contextmanager
    def adapter_disabled(self) -> Iterator[None]:
        """The reference policy: the base transformer with the LoRA switched off."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()


class FrozenLora:
    """A copy of the LoRA parameters taken by :meth:`refresh`, swapped in by :meth:`swapped_in`.

    The released trainers keep an "old" peft adapter, copied from the trained one after every
    epoch; here the copy is plain tensors of the same parameters (DTensor shards under FSDP2),
    put into the very modules the current policy runs through, so the old score takes the
    same code path. Two copies of the LoRA in memory (the frozen weights and the live ones
    while swapped out).
    """

    def __init__(self, parameters: list[torch.nn.Parameter]):
        self.parameters = parameters
        self.frozen = [p.detach().clone() for p in parameters]
        self.live = [torch.empty_like(p) for p in self.frozen]

    @torch.no_grad()
    def refresh(self) -> None:
        for frozen, param in zip(self.frozen, self.parameters, strict=True):
            frozen.copy_(param.detach())

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The frozen weights in the model; the live ones restored after (also on an error)."""
        with torch.no_grad():
            for live, param, frozen in zip(self.live, self.parameters, self.frozen, strict=True):
                live.copy_(param.detach())
                param.copy_(frozen)
        try:
            yield
        finally:
            with torch.no_grad():
                for live, param in zip(self.live, self.parameters, strict=True):
                    param.copy_(live)


def update_metrics(terms: list[PolicyLoss], grad_norms: list[float]) -> dict[str, float]:
    """The ``policy/*`` metrics of an update (the README's metrics table)."""
    ratios = torch.cat([t.ratio for t in terms]) if terms else torch.ones(1)

    def mean_of(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    return {
        "policy/ratio_first": float(terms[0].ratio.mean()) if terms else 1.0,
        "policy/ratio_mean": float(ratios.mean()),
        "policy/ratio_min": float(ratios.min()),
        "policy/ratio_max": float(ratios.max()),
        "policy/clip_fraction": mean_of([float(t.clip_fraction) for t in terms]),
        "policy/kl": mean_of([float(t.kl) for t in terms]),
        "policy/loss": mean_of([float(t.total) for t in terms]),
        "policy/grad_norm": mean_of(grad_norms),
        "policy/optimizer_steps": len(grad_norms),
    }
