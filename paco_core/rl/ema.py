"""Exponential moving average of the trainable (LoRA) parameters.

decay(s) = min((1 + s) / (10 + s), max_decay); shadow <- decay * shadow + (1 - decay) * weights.
The EMA weights are what checkpoints save and what evaluation uses (:meth:`LoraEma.swapped_in`).

Two cadences (``ema.cadence``):

- ``iteration`` (ours, the default): one update after every ``update_every``-th iteration,
  ``s`` = the iteration count (:meth:`LoraEma.maybe_update`).
- ``released`` (the released PaCo-GRPO trainer): ``s`` = g, the count of optimizer steps
  so far; after every micro-batch of the update the EMA is applied when
  ``(g + 1) % update_every == 0`` (:meth:`LoraEma.maybe_update_released`). The count only
  moves at the end of an accumulation window, so inside its windows the EMA is applied once
  per micro-batch, n times in all with the same weights: one update of decay ``decay(g)**n``.
  With the released 42 micro-batches per window and decay 0.9 the shadow keeps 0.9**42 = 1.2%
  of its past, close to a copy of the weights every 8 optimizer steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class LoraEma:
    """EMA shadow of a list of named parameters (kept in float32 on their device)."""

    def __init__(
        self, named_parameters: list[tuple[str, torch.nn.Parameter]], *, max_decay: float, update_every: int
    ):
        self.parameters = dict(named_parameters)
        self.max_decay = max_decay
        self.update_every = update_every
        self.shadow = {name: p.detach().to(torch.float32).clone() for name, p in self.parameters.items()}

    def decay(self, step: int) -> float:
        return min((1.0 + step) / (10.0 + step), self.max_decay)

    def maybe_update(self, step: int) -> bool:
        """Cadence ``iteration``: update when ``step`` is a multiple of ``update_every``; returns whether it did."""
        if step % self.update_every:
            return False
        self.update(self.decay(step))
        return True

    def maybe_update_released(self, optimizer_steps: int) -> bool:
        """Cadence ``released``: called after every micro-batch with the optimizer steps taken so
        far (g); updates with decay(g) when ``(g + 1) % update_every == 0``; returns whether it did."""
        if (optimizer_steps + 1) % self.update_every:
            return False
        self.update(self.decay(optimizer_steps))
        return True

    @torch.no_grad()
    def update(self, decay: float) -> None:
        """shadow <- decay * shadow + (1 - decay) * the current weights."""
        for name, param in self.parameters.items():
            self.shadow[name].mul_(decay).add_(param.detach().to(torch.float32), alpha=1.0 - decay)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Temporarily put the EMA weights into the model; restores the live weights after."""
        backup = {name: p.detach().clone() for name, p in self.parameters.items()}
        try:
            with torch.no_grad():
                for name, param in self.parameters.items():
                    param.copy_(self.shadow[name].to(param.dtype))
            yield
        finally:
            with torch.no_grad():
                for name, param in self.parameters.items():
                    param.copy_(backup[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full CPU tensors (under FSDP2 the shards are gathered: every process must call it)."""
        from paco_core.rl.sharding import full_tensor

        return {name: full_tensor(tensor.detach()).cpu() for name, tensor in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            from paco_core.errors import TrainingError

            raise TrainingError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        from paco_core.rl.sharding import shard_like

        for name in self.shadow:
            self.shadow[name] = shard_like(state[name], self.shadow[name]).clone()
