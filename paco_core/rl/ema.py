"""Exponential moving average of the trainable (LoRA) parameters.

decay(s) = min((1 + s) / (10 + s), max_decay), applied every ``update_every`` steps. The
EMA weights are what checkpoints save and what evaluation uses (:meth:`LoraEma.swapped_in`).
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

    @torch.no_grad()
    def maybe_update(self, step: int) -> bool:
        """Update the shadow when ``step`` is a multiple of ``update_every``; returns whether it did."""
        if step % self.update_every:
            return False
        decay = self.decay(step)
        for name, param in self.parameters.items():
            self.shadow[name].mul_(decay).add_(param.detach().to(torch.float32), alpha=1.0 - decay)
        return True

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
        return {name: tensor.detach().cpu() for name, tensor in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            from paco_core.errors import TrainingError

            raise TrainingError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        for name in self.shadow:
            self.shadow[name] = state[name].to(self.shadow[name].device, torch.float32).clone()
