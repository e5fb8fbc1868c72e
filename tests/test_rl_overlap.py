"""Rollouts overlapped with scoring: with a judge server, micro-batch k is scored in a worker
thread while micro-batch k + 1 rolls out; the iteration's rewards and advantages are those
of the sequential order."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from paco_core.config import config_from_dict
from paco_core.reward import open_judge
from paco_core.reward.judge_server import JudgeHTTPServer
from paco_core.rl import trainer as trainer_module
from paco_core.rl.config import TrainConfig
from paco_core.rl.trainer import GrpoTrainer

FIXTURES = Path(__file__).parent / "fixtures" / "rl"


def served_config(
    model_path: Path, output_dir: Path, url: str, vocab_size: int, overlap: bool
) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "model": {"kind": "flux", "path": str(model_path), "device": "cpu"},
            "lora": {"rank": 4, "alpha": 8},
            "sampling": {
                "num_steps": 2,
                "noise_steps": [0],
                "train_resolution": 64,
                "group_size": 4,
                "batch_size": 1,
                "prompts_per_iteration": 1,
                "max_sequence_length": 16,
            },
            "data": {"train_file": str(FIXTURES / "sets.jsonl")},
            "rewards": {
                "rewards": [{"name": "consistency"}, {"name": "toy_rewards:mean_brightness", "weight": 0.5}],
                "aggregation": "weighted_sum",
                "judge_url": url,
                "judge_server_model": "tiny-judge",
                "judge_top_logprobs": vocab_size,
                "overlap_scoring": overlap,
            },
            "ema": {"use_ema": False},
            "num_iterations": 2,
            "output_dir": str(output_dir),
            "checkpoint_every": 100,
            "eval_every": 0,
        },
    )


def run_iterations(config: TrainConfig, monkeypatch, rollout_hook=None) -> list[tuple]:
    """Two iterations; each one's (reward matrix, advantages)."""
    captured = []
    monkeypatch.syspath_prepend(str(FIXTURES))  # toy_rewards
    compute = trainer_module.compute_advantages

    def capture(scores, *args, **kwargs):
        result = compute(scores, *args, **kwargs)
        captured.append((np.array(scores), np.array(result.values)))
        return result

    monkeypatch.setattr(trainer_module, "compute_advantages", capture)
    if rollout_hook is not None:
        monkeypatch.setattr(
            trainer_module, "rollout_micro_batch", rollout_hook(trainer_module.rollout_micro_batch)
        )
    trainer = GrpoTrainer(config)
    trainer.check_config()
    trainer.setup()
    for step in range(2):
        trainer.run_iteration(step)
    monkeypatch.undo()
    return captured


@pytest.mark.slow
def test_overlapped_scoring_gives_the_sequential_rewards_and_advantages(tiny_models, tmp_path, monkeypatch):
    judge = open_judge(tiny_models["judge"], cache_size=0)
    vocab_size = int(judge.model.config.text_config.vocab_size)
    requested = threading.Event()
    score_on_server = judge.first_token_logprobs

    def scored(pairs):
        requested.set()
        return score_on_server(pairs)

    judge.first_token_logprobs = scored
    waits = []

    def second_rollout_waits_for_the_first_scoring(rollout):
        calls = []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:  # micro-batch 2 starts only once micro-batch 1 is being scored
                waits.append(requested.wait(timeout=60))
            return rollout(*args, **kwargs)

        return wrapped

    with JudgeHTTPServer(judge, model_name="tiny-judge", max_logprobs=vocab_size) as server:
        sequential = run_iterations(
            served_config(tiny_models["flux"], tmp_path / "seq", server.url, vocab_size, overlap=False),
            monkeypatch,
        )
        requested.clear()
        overlapped = run_iterations(
            served_config(tiny_models["flux"], tmp_path / "overlap", server.url, vocab_size, overlap=True),
            monkeypatch,
            rollout_hook=second_rollout_waits_for_the_first_scoring,
        )
    assert waits == [True]  # the first micro-batch was scored while the second was rolling out
    assert len(sequential) == len(overlapped) == 2
    for (seq_scores, seq_advantages), (ovl_scores, ovl_advantages) in zip(
        sequential, overlapped, strict=True
    ):
        assert seq_scores.shape == (4, 2) and not np.isnan(seq_scores).any()
        np.testing.assert_array_equal(ovl_scores, seq_scores)
        np.testing.assert_array_equal(ovl_advantages, seq_advantages)
    assert not np.array_equal(sequential[0][0], sequential[1][0])  # the second iteration had new images
