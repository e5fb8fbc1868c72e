"""Held-out guardrail: the best evaluation so far, and a warning when the LoRA games its reward.

At every evaluation the trainer gives :meth:`Guardrail.observe` the held-out metric
(``best_metric``, default the first eval reward's mean, on eval prompts never trained on)
and the training reward of the steps since the previous evaluation (the mean of
``rewards/aggregated/mean``). The guardrail then

- says whether this evaluation is the best so far (``best_mode`` max or min; NaN never
  is), so the trainer writes its LoRA to ``best/``;
- counts the evaluations in a row at which the held-out metric got worse than at the
  evaluation before while the training reward went up (its interval mean above the
  previous interval's). At ``guardrail_patience`` such evaluations in a row it returns a
  ``reward_gaming`` warning (once per streak; a longer streak updates the same warning).

Its whole state is plain JSON, saved in the checkpoint's trainer state, so a resumed run
warns and picks its best exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

TRAIN_METRIC = "rewards/aggregated/mean"
"""The training reward the guardrail follows: the aggregated reward training maximises."""
GAMING_CODE = "reward_gaming"


class Guardrail:
    """Best-evaluation tracking and the reward-gaming warning (see the module doc)."""

    def __init__(self, metric: str, mode: str = "max", patience: int = 3):
        self.metric = metric
        self.mode = mode
        self.patience = patience
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.history: list[dict[str, Any]] = []
        """One entry per evaluation: step, held (the metric), train (interval mean or None)."""
        self.warnings: list[dict[str, Any]] = []
        self._train_since_eval: list[float] = []

    # ------------------------------------------------------------------ inputs

    def add_train_reward(self, value: Any) -> None:
        """The training reward of one step (ignored when missing or not finite)."""
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._train_since_eval.append(float(value))

    def observe(self, step: int, eval_metrics: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Record the evaluation of ``step``; returns (is it the best so far, a new or updated warning)."""
        held = _finite(eval_metrics.get(self.metric))
        train = sum(self._train_since_eval) / len(self._train_since_eval) if self._train_since_eval else None
        self._train_since_eval = []
        self.history.append({"step": step, "held": held, "train": train})
        improved = held is not None and (self.best_value is None or self._better(held, self.best_value))
        if improved:
            self.best_step, self.best_value = step, held
        return improved, self._check_gaming()

    # ------------------------------------------------------------------ the warning

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.mode == "max" else value < than

    def gaming_streak(self) -> int:
        """How many of the latest evaluations in a row had the held-out metric worse and the train reward up."""
        streak = 0
        for previous, current in zip(reversed(self.history[:-1]), reversed(self.history[1:]), strict=True):
            values = (previous["held"], current["held"], previous["train"], current["train"])
            if any(v is None for v in values):
                break
            held_worse = self._better(previous["held"], current["held"])
            train_up = current["train"] > previous["train"]
            if not (held_worse and train_up):
                break
            streak += 1
        return streak

    def _check_gaming(self) -> dict[str, Any] | None:
        streak = self.gaming_streak()
        if not self.patience or streak < self.patience:
            return None
        window = self.history[-(streak + 1) :]
        first, last = window[0], window[-1]
        direction = "fell" if self.mode == "max" else "rose"
        warning = {
            "code": GAMING_CODE,
            "step": last["step"],
            "since_step": first["step"],
            "evaluations": streak,
            "metric": self.metric,
            "train_metric": TRAIN_METRIC,
            "held_out": [entry["held"] for entry in window],
            "train": [entry["train"] for entry in window],
            "steps": [entry["step"] for entry in window],
            "best_step": self.best_step,
            "message": (
                f"The LoRA may be gaming its reward: over the last {streak} evaluations (steps "
                f"{first['step']} to {last['step']}) the training reward rose from {first['train']:.4g} to "
                f"{last['train']:.4g} while the score on held-out prompts ({self.metric}) {direction} from "
                f"{first['held']:.4g} to {last['held']:.4g}. Look at the samples; the best LoRA so far "
                f"(step {self.best_step}) is kept in best/."
            ),
        }
        if (
            self.warnings
            and self.warnings[-1]["code"] == GAMING_CODE
            and self.warnings[-1]["since_step"] == first["step"]
        ):
            self.warnings[-1] = warning  # the same streak, longer
        else:
            self.warnings.append(warning)
        return warning

    # ------------------------------------------------------------------ checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "best_step": self.best_step,
            "best_value": self.best_value,
            "history": self.history,
            "warnings": self.warnings,
            "train_since_eval": self._train_since_eval,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore; returns False (and keeps a fresh state) when the state followed another metric or mode."""
        if not state or state.get("metric") != self.metric or state.get("mode") != self.mode:
            return False
        self.best_step = state.get("best_step")
        self.best_value = state.get("best_value")
        self.history = list(state.get("history") or [])
        self.warnings = list(state.get("warnings") or [])
        self._train_since_eval = [float(v) for v in state.get("train_since_eval") or []]
        return True


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
