"""The guardrail's eyes on the eval samples: image statistics and the second judge, measured at
every evaluation, and the warnings the trainer acts on (``guardrail_action``).

:class:`SampleGuardrail` is what the trainer holds: :meth:`~SampleGuardrail.metrics` runs on
the eval images (``eval/image/<statistic>``, ``eval/second_judge/mean``),
:meth:`~SampleGuardrail.observe` turns an evaluation's metrics into warnings
(:mod:`~paco_core.rl.image_checks`). The second judge's own warning is the held-out
guardrail's reward-gaming warning (:mod:`~paco_core.rl.guardrail`), which follows
``eval/second_judge/mean`` when it is configured and ``best_metric`` is not.
"""

from __future__ import annotations

from typing import Any

from paco_core.rl.config import TrainConfig
from paco_core.rl.image_checks import CHECKS, ImageChecks, image_statistics

IMAGE_METRIC_PREFIX = "eval/image/"


class SampleGuardrail:
    def __init__(self, config: TrainConfig, device: str = "cpu"):
        self.config = config
        self.checks = ImageChecks(config.guardrail_image_tolerance) if config.guardrail_image_checks else None
        self.second_judge = None
        if config.guardrail_second_judge:
            from paco_core.rl.second_judge import SecondJudge

            rewards = config.rewards
            self.second_judge = SecondJudge(
                config.guardrail_second_judge, rewards.references, rewards.judge_theme, device
            )

    def metrics(self, images: list, prompts: list[str], metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """The eval images' statistics and the second judge's score."""
        found: dict[str, Any] = {}
        if self.checks is not None:
            found.update({f"{IMAGE_METRIC_PREFIX}{k}": v for k, v in image_statistics(images).items()})
        if self.second_judge is not None:
            found.update(self.second_judge.score(images, prompts, metadata))
        return found

    def observe(self, step: int, metrics: dict[str, Any]) -> list[dict[str, Any]]:
        """The image checks' warnings of this evaluation (none before the baseline)."""
        if self.checks is None:
            return []
        stats = {
            name: metrics[f"{IMAGE_METRIC_PREFIX}{name}"]
            for name in CHECKS
            if f"{IMAGE_METRIC_PREFIX}{name}" in metrics
        }
        return self.checks.observe(step, stats)

    def state_dict(self) -> dict[str, Any]:
        return self.checks.state_dict() if self.checks is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.checks is not None and state:
            self.checks.load_state_dict(state)
