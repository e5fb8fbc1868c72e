"""Groups that teach nothing: counted per iteration, their prompts dropped on request, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.rl.data import PromptRow, PromptSampler
from paco_core.rl.trainer import GrpoTrainer
from paco_core.rl.zero_spread import zero_spread_groups
from paco_core.run_folder import RunFolder

SOME_PROMPTS = "teach_nothing_rewards:brightness_on_some_prompts"


def test_zero_spread_needs_every_reward_flat_and_two_scored_images():
    rewards = np.array(
        [
            [0.5, 1.0],
            [0.5, 1.0],  # group 0: both rewards flat -> teaches nothing
            [0.5, 0.1],
            [0.5, 0.9],  # group 1: the second reward spreads
            [0.2, np.nan],
            [0.2, 0.3],  # group 2: one scored image only -> not counted
            [0.30001, 2.0],
            [0.3, 2.0],  # group 3: under the tolerance
        ]
    )
    groups = np.repeat(np.arange(4), 2)
    assert zero_spread_groups(rewards, groups) == [0, 3]
    assert zero_spread_groups(rewards, groups, tolerance=0.0) == [0]


def _rows(n: int) -> list[PromptRow]:
    return [PromptRow("set", f"prompt {i}", i) for i in range(n)]


def test_dropped_rows_are_never_sampled_again_and_the_state_resumes():
    rows = _rows(5)
    sampler = PromptSampler(rows, seed=3)
    sampler.next_rows(2)
    assert sampler.drop([rows[1], rows[3]], keep_at_least=2) == [rows[1], rows[3]]
    taken = sampler.next_rows(12)
    assert len(taken) == 12 and {row.index for row in taken} == {0, 2, 4}
    # a resumed sampler continues the same order
    resumed = PromptSampler(rows, seed=3)
    resumed.load_state_dict(sampler.state_dict())
    assert [r.index for r in resumed.next_rows(7)] == [r.index for r in sampler.next_rows(7)]
    # never below what an iteration takes
    assert sampler.drop([rows[0], rows[2]], keep_at_least=2) == [rows[0]]
    assert {row.index for row in sampler.next_rows(6)} == {2, 4}


def _run(tiny_models, path, drop: bool, iterations: int = 9):
    config = tiny_config(
        tiny_models["flux"],
        path,
        num_iterations=iterations,
        checkpoint_every=iterations,
        rewards={"rewards": [{"name": SOME_PROMPTS}]},
        data={"eval_fraction": 0.0, "drop_zero_spread_prompts": drop},
    )
    GrpoTrainer(config).train()
    return RunFolder(path)


@pytest.mark.slow
def test_the_trainer_counts_them_and_drops_their_prompts_when_asked(tiny_models, tmp_path):
    kept = _run(tiny_models, tmp_path / "kept", drop=False)
    dropped = _run(tiny_models, tmp_path / "dropped", drop=True)
    # 5 prompts, 2 teach (fox, cat): one prompt per iteration, 9 iterations: almost two epochs
    kept_counts = [v for _, v in kept.metric_series("groups/zero_spread")]
    dropped_counts = [v for _, v in dropped.metric_series("groups/zero_spread")]
    assert len(kept_counts) == 9 and sum(kept_counts) >= 4, "the seeded order must meet flat prompts twice"
    assert all(v == 0 for _, v in kept.metric_series("groups/dropped_prompts"))
    # dropping: each flat prompt is met at most once, so fewer wasted groups overall
    total_dropped = [v for _, v in dropped.metric_series("groups/dropped_prompts")][-1]
    assert sum(dropped_counts) == total_dropped == 3 and sum(dropped_counts) < sum(kept_counts)
    assert dropped_counts[-3:] == [0, 0, 0]
