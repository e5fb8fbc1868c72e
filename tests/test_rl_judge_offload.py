"""Judge offload (``rewards.judge_offload``): the local judge is parked in CPU memory during
rollouts and updates and moved to the training device only to score; scores unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from paco_core.config import config_from_dict
from paco_core.reward.local import LocalJudge
from paco_core.rl.config import TrainConfig
from paco_core.rl.trainer import GrpoTrainer

FIXTURES = Path(__file__).parent / "fixtures" / "rl"
PARK = "cpu:0"
"""A CPU device spelled apart from the training device "cpu", so the moves can be told apart."""


def judged_config(tiny_models, output_dir: Path, offload: bool) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "model": {"kind": "flux", "path": str(tiny_models["flux"]), "device": "cpu"},
            "lora": {"rank": 4, "alpha": 8},
            "sampling": {
                "num_steps": 2,
                "noise_steps": [0],
                "train_resolution": 64,
                "eval_resolution": 64,
                "group_size": 2,
                "batch_size": 2,
                "prompts_per_iteration": 1,
                "max_sequence_length": 16,
            },
            "data": {"train_file": str(FIXTURES / "sets.jsonl")},
            "rewards": {
                "rewards": [{"name": "consistency"}],
                "aggregation": "weighted_sum",
                "judge_path": str(tiny_models["judge"]),
                "judge_offload": offload,
            },
            "ema": {"use_ema": False},
            "num_iterations": 2,
            "output_dir": str(output_dir),
            "checkpoint_every": 100,
            "eval_every": 0,
        },
    )


def run_two_iterations(config: TrainConfig, events: list[str]) -> list[float]:
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    trainer.reward_models.park_device = PARK
    collect, update = trainer.collect_rollouts, trainer.updater.update

    def collect_rollouts(*args, **kwargs):
        events.append("rollout")
        return collect(*args, **kwargs)

    def policy_update(*args, **kwargs):
        events.append("update")
        return update(*args, **kwargs)

    trainer.collect_rollouts, trainer.updater.update = collect_rollouts, policy_update
    return [trainer.run_iteration(step)["rewards/consistency/mean"] for step in range(2)]


@pytest.mark.slow
def test_offloaded_judge_scores_the_same_and_is_parked_outside_scoring(tiny_models, tmp_path, monkeypatch):
    events: list[str] = []
    move_to = LocalJudge.move_to

    def recorded_move(self, device):
        events.append("park" if str(device) == PARK else f"to {device}")
        move_to(self, device)

    monkeypatch.setattr(LocalJudge, "move_to", recorded_move)
    kept = run_two_iterations(judged_config(tiny_models, tmp_path / "kept", offload=False), [])
    offloaded = run_two_iterations(judged_config(tiny_models, tmp_path / "offloaded", offload=True), events)
    assert offloaded[0] == kept[0]  # the same scores (moving the weights re-lays them out in memory,
    assert offloaded[1] == pytest.approx(kept[1], rel=1e-6)  # so later fp32 sums round differently)
    # iteration 1 loads the judge while scoring (on the device), parks it after; iteration 2
    # moves it in for scoring only
    assert events == ["rollout", "park", "update", "rollout", "to cpu", "park", "update"]
    assert "park" not in [e for e in events if e != "park"] and kept[0] != kept[1]
