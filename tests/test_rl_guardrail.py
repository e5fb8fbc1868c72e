"""Held-out guardrail: disjoint eval rows, best/ follows the best eval value, the reward-gaming warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import merge_sections
from safetensors.torch import load_file
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.errors import ConfigError
from paco_core.rl.guardrail import Guardrail
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder

FIXTURES = Path(__file__).parent / "fixtures" / "rl"
BRIGHTNESS = "toy_rewards:mean_brightness"
DARKNESS = "toy_rewards:darkness"


def _learning_config(model, run: Path, **extra):
    """Trains on brightness fast enough to move the tiny FLUX in a few steps (see test_rl_trainer)."""
    settings = {
        "num_iterations": 6, "checkpoint_every": 1, "checkpoints_total_limit": 0, "eval_every": 1,
        "eval_group_size": 4,
        "sampling": {"prompts_per_iteration": 2, "group_size": 4, "batch_size": 4, "noise_level": 1.0},
        "optim": {"lr": 5e-2, "clip_range": 0.2},
        "rewards": {"eval_rewards": [{"name": DARKNESS}, {"name": BRIGHTNESS}]},
    }  # fmt: skip
    return tiny_config(model, run, **merge_sections(settings, extra))


def test_a_reward_that_can_be_gamed_raises_the_warning(tiny_models, tmp_path, caplog):
    # training reward: brightness; held-out metric (the default: the first eval reward's mean):
    # darkness, which falls exactly as the LoRA learns to brighten
    run = RunFolder(tmp_path / "gamed")
    config = _learning_config(tiny_models["flux"], run.path, guardrail_patience=2)
    assert config.held_out_metric == f"eval/rewards/{DARKNESS}/mean"
    with caplog.at_level("WARNING", logger="paco_core.rl.trainer"):
        GrpoTrainer(config).train()
    progress = run.read_progress()
    warnings = [w for w in progress["warnings"] if w["code"] == "reward_gaming"]  # image checks may warn too
    assert len(warnings) == 1 and warnings[0]["code"] == "reward_gaming"
    warning = warnings[0]
    assert warning["evaluations"] >= 2 and warning["metric"] == f"eval/rewards/{DARKNESS}/mean"
    # the numbers in the warning are the run's: the train reward rose, the held-out score fell, each time
    held = dict(run.metric_series(f"eval/rewards/{DARKNESS}/mean"))
    assert warning["held_out"] == [held[s] for s in warning["steps"]]
    assert all(b < a for a, b in zip(warning["held_out"], warning["held_out"][1:], strict=False))
    assert all(b > a for a, b in zip(warning["train"], warning["train"][1:], strict=False))
    assert "may be gaming its reward" in warning["message"] and "held-out prompts" in warning["message"]
    assert any("guardrail (step" in r.message and "gaming" in r.message for r in caplog.records)
    # darkness was best before training: best/ stays at step 0
    assert progress["best_step"] == 0 and progress["best_value"] == held[0] == max(held.values())


def test_best_follows_the_best_eval_value_and_survives_resume(tiny_models, tmp_path):
    metric = f"eval/rewards/{BRIGHTNESS}/mean"
    run = RunFolder(tmp_path / "best")
    config = _learning_config(tiny_models["flux"], run.path, best_metric=metric)
    GrpoTrainer(config).train()
    series = dict(run.metric_series(metric))
    best_step = max(series, key=lambda s: series[s])
    assert best_step > 0, "the test needs a run whose best evaluation is not the first"
    progress = run.read_progress()
    assert (progress["best_step"], progress["best_value"], progress["best_metric"]) == (
        best_step,
        series[best_step],
        metric,
    )
    assert progress["best_lora"] == str(run.best_lora_path)
    assert progress["best_checkpoint"] == str(
        run.best_dir
    )  # the job store's best LoRA: <it>/lora.safetensors
    info = json.loads((run.best_dir / "best.json").read_text())
    assert info["step"] == best_step and info["metric"] == metric and info["mode"] == "max"
    # best/ holds the LoRA of that step: the same tensors as that step's checkpoint LoRA
    best, at_step = load_file(run.best_lora_path), load_file(run.checkpoint(best_step).lora_path)
    assert best.keys() == at_step.keys() and all(torch.equal(best[k], at_step[k]) for k in best)

    # resumed from a checkpoint before the best step: the same best, warnings and best/ file
    split = RunFolder(tmp_path / "split")
    GrpoTrainer(
        _learning_config(tiny_models["flux"], split.path, best_metric=metric, num_iterations=2)
    ).train()
    GrpoTrainer(_learning_config(tiny_models["flux"], split.path, best_metric=metric)).train(resume="latest")
    resumed = split.read_progress()
    for key in ("best_step", "best_value", "warnings"):
        assert resumed[key] == progress[key], key
    again = load_file(split.best_lora_path)
    assert all(torch.equal(again[k], best[k]) for k in best)


def test_best_of_a_crashed_run_is_brought_back_to_the_checkpoint(tiny_models, tmp_path):
    """A run that evaluated after its last checkpoint left a newer best/: resuming restores the
    best of the checkpoint's state (its LoRA taken from that step's checkpoint)."""
    metric = f"eval/rewards/{BRIGHTNESS}/mean"
    run = RunFolder(tmp_path / "run")
    GrpoTrainer(_learning_config(tiny_models["flux"], run.path, best_metric=metric, num_iterations=4)).train()
    before = run.read_progress()
    # pretend the trainer died after step 4's evaluation but before checkpoint-4 was complete
    import shutil

    for step in (3, 4):
        shutil.rmtree(run.checkpoint_path(step))
    assert run.read_best()["step"] > 2, "the test needs a best evaluation after checkpoint-2"
    config = _learning_config(tiny_models["flux"], run.path, best_metric=metric, num_iterations=2)
    GrpoTrainer(config).train(resume="latest")  # checkpoint-2: nothing left to train, the state is restored
    progress = run.read_progress()
    assert progress["best_step"] <= 2 and progress["best_lora"] == str(run.best_lora_path)
    info = run.read_best()
    assert info["step"] == progress["best_step"] and info["value"] == progress["best_value"]
    restored, source = load_file(run.best_lora_path), load_file(run.checkpoint(info["step"]).lora_path)
    assert all(torch.equal(restored[k], source[k]) for k in source)
    assert before["best_step"] >= info["step"]


def test_eval_file_rows_must_not_be_training_rows(tiny_models, tmp_path, caplog):
    config = tiny_config(
        tiny_models["flux"], tmp_path / "run", data={"eval_file": str(FIXTURES / "sets.jsonl")}, eval_every=1
    )
    with pytest.raises(ConfigError, match=r"5 of the 5 rows of `data.eval_file` are also training rows"):
        GrpoTrainer(config).train()
    # a split of one file with a duplicated row: a warning with the count
    rows = (FIXTURES / "sets.jsonl").read_text().splitlines()
    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_text("\n".join(rows + rows[:1] + rows[1:2]) + "\n")
    from paco_core.rl.data import check_held_out, load_splits

    splits = load_splits(str(duplicated), eval_fraction=0.5, seed=1)
    with caplog.at_level("WARNING", logger="paco_core.rl.data"):
        check_held_out(splits)
    overlap = [r for r in caplog.records if "held-out rows repeat training rows" in r.message]
    assert len(overlap) == 1 and overlap[0].message.split()[0].isdigit()


def test_best_metric_must_be_an_eval_metric(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match=r"`best_metric` 'eval/rewards/clip_t/mean' is not an eval metric"):
        tiny_config(tiny_models["flux"], tmp_path, best_metric="eval/rewards/clip_t/mean")


@pytest.mark.parametrize(
    ("held", "train", "mode", "patience", "warned_at"),
    [
        # held-out falls, train rises from the second evaluation on: the 3rd such in a row warns
        ([0.9, 0.8, 0.7, 0.6, 0.5], [None, 0.1, 0.2, 0.3, 0.4], "max", 3, [4]),
        # a held-out value that recovers breaks the streak
        ([0.9, 0.8, 0.85, 0.7, 0.6], [None, 0.1, 0.2, 0.3, 0.4], "max", 3, []),
        # train reward flat: no gaming, however the held-out score falls
        ([0.9, 0.8, 0.7, 0.6, 0.5], [None, 0.2, 0.2, 0.2, 0.2], "max", 2, []),
        # mode min: the held-out metric getting worse means rising
        ([0.1, 0.2, 0.3, 0.4], [None, 0.1, 0.2, 0.3], "min", 2, [3]),
        # patience 0: never
        ([0.9, 0.8, 0.7, 0.6, 0.5], [None, 0.1, 0.2, 0.3, 0.4], "max", 0, []),
    ],
)
def test_guardrail_counts_evaluations_in_a_row(held, train, mode, patience, warned_at):
    guardrail = Guardrail("eval/rewards/x/mean", mode, patience)
    warned = []
    for step, (h, t) in enumerate(zip(held, train, strict=True)):
        guardrail.add_train_reward(t)
        _, warning = guardrail.observe(step, {"eval/rewards/x/mean": h})
        if warning is not None:
            warned.append(step)
    assert warned[:1] == warned_at
    assert len(guardrail.warnings) == (1 if warned_at else 0)  # one warning per streak, updated as it grows
    best = max(held) if mode == "max" else min(held)
    assert guardrail.best_value == best and guardrail.best_step == held.index(best)
    clone = Guardrail("eval/rewards/x/mean", mode, patience)
    assert clone.load_state_dict(json.loads(json.dumps(guardrail.state_dict())))
    assert clone.state_dict() == guardrail.state_dict()
    assert not Guardrail("eval/rewards/y/mean", mode, patience).load_state_dict(guardrail.state_dict())
