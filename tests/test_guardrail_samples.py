"""The guardrail without a second person: image statistics of the eval samples against the first
evaluation, the second judge (CLIP to the references, or a zero-shot Qwen2.5-VL), and the actions
stop and rollback; bad second judges fail before any model loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from test_rl_trainer import tiny_config, toy_rewards_on_path  # noqa: F401 (the fixture is autouse)

from paco_core.errors import ConfigError
from paco_core.rl.image_checks import ImageChecks, image_statistics
from paco_core.rl.second_judge import METRIC, SecondJudge, check_second_judge
from paco_core.rl.trainer import GrpoTrainer
from paco_core.run_folder import RunFolder


def _smooth(size=64) -> Image.Image:
    """A soft gradient with one sharp-edged disc: natural-looking, some edges, no grid."""
    from PIL import ImageDraw

    x = np.linspace(0, 1, size)
    grey = (np.outer(x, x) * 150 + 40).astype(np.uint8)
    image = Image.fromarray(np.stack([grey, grey // 2 + 60, 200 - grey // 2], axis=-1))
    ImageDraw.Draw(image).ellipse((size * 0.2, size * 0.3, size * 0.7, size * 0.75), fill=(180, 120, 90))
    return image


def test_each_statistic_moves_with_the_artefact_it_names():
    base = _smooth()
    noisy = Image.fromarray(
        np.clip(
            np.asarray(base, dtype=np.int16) + np.random.default_rng(0).integers(-60, 60, (64, 64, 3)), 0, 255
        ).astype(np.uint8)
    )
    gridded = np.asarray(base).copy()
    gridded[::8, :, :] = 0
    gridded[:, ::8, :] = 0
    blurred = base.filter(ImageFilter.GaussianBlur(3))
    saturated = Image.fromarray(np.where(np.asarray(base) > 128, 255, 0).astype(np.uint8))
    stats = {
        name: image_statistics([image])
        for name, image in (
            ("base", base),
            ("noisy", noisy),
            ("grid", Image.fromarray(gridded)),
            ("blur", blurred),
            ("saturated", saturated),
        )
    }
    assert stats["noisy"]["high_frequency"] > 5 * stats["base"]["high_frequency"]
    assert (
        stats["grid"]["grid"] > 5 * stats["base"]["grid"] and stats["grid"]["grid"] > stats["noisy"]["grid"]
    )
    assert stats["blur"]["sharpness"] < 0.5 * stats["base"]["sharpness"]
    assert stats["saturated"]["saturation"] > 1.5 * stats["base"]["saturation"]


def test_checks_fire_against_the_first_evaluation_and_name_both_samples():
    checks = ImageChecks(tolerance=0.5)
    base = image_statistics([_smooth()])
    assert checks.observe(0, base) == []
    assert checks.observe(5, base) == []
    blurred = image_statistics([_smooth().filter(ImageFilter.GaussianBlur(3))])
    warnings = checks.observe(10, blurred)
    assert [w["code"] for w in warnings] == ["image_sharpness"]
    warning = warnings[0]
    assert (
        warning["samples"] == [0, 10]
        and warning["baseline"] == base["sharpness"]
        and warning["change"] < -0.5
    )
    assert (
        "sharpness" in warning["message"]
        and "step 0" in warning["message"]
        and "\n" not in warning["message"]
    )
    resumed = ImageChecks(0.5)
    resumed.load_state_dict(checks.state_dict())
    assert resumed.observe(15, blurred)[0]["since_step"] == 10


def test_stop_on_an_image_warning_stops_the_run_with_the_warning_in_progress(tiny_models, tmp_path):
    config = tiny_config(
        tiny_models["flux"],
        tmp_path / "run",
        num_iterations=4,
        eval_every=1,
        guardrail_image_tolerance=1e-9,
        guardrail_action="stop",
        optim={"lr": 5e-2, "clip_range": 0.2},
    )
    result = GrpoTrainer(config).train()
    assert result.state == "stopped" and result.step == 1
    run = RunFolder(config.output_dir)
    warnings = [w for w in run.read_progress()["warnings"] if w["code"].startswith("image_")]
    assert warnings and all(w["samples"] == [0, 1] and w["action"] == "stopped" for w in warnings[:1])
    assert (
        run.sample_path(0).is_file() and run.sample_path(1).is_file()
    )  # what the sidebar shows side by side
    assert [name for name in run.metric_names() if name.startswith("eval/image/")]


def test_rollback_restores_the_best_checkpoints_lora_or_stops_without_one(tiny_models, tmp_path):
    from safetensors.torch import load_file

    from paco_core.rl.guardrail_rollback import roll_back_to_best

    settings = dict(
        eval_every=1,
        checkpoint_every=1,
        checkpoints_total_limit=0,
        guardrail_image_tolerance=1e-9,
        guardrail_action="rollback",
        optim={"lr": 5e-2, "clip_range": 0.2},
    )
    # the held-out metric (darkness) is best before training: step 0 has no checkpoint -> stop
    stopped = tiny_config(
        tiny_models["flux"],
        tmp_path / "stopped",
        num_iterations=3,
        best_metric="eval/rewards/toy_rewards:darkness/mean",
        rewards={"eval_rewards": [{"name": "toy_rewards:darkness"}]},
        **settings,
    )
    result = GrpoTrainer(stopped).train()
    warnings = [
        w for w in RunFolder(stopped.output_dir).read_progress()["warnings"] if w["code"].startswith("image_")
    ]
    assert result.state == "stopped" and result.step == 1 and {w["action"] for w in warnings} == {"stopped"}
    # with the best step's checkpoint on disk the live LoRA goes back to it, and training can go on
    trainer = GrpoTrainer(tiny_config(tiny_models["flux"], tmp_path / "rolled", num_iterations=2, **settings))
    trainer.train()
    trainer.guardrail.best_step = 1
    assert roll_back_to_best(trainer) == "rolled back to step 1"
    saved = load_file(RunFolder(trainer.output_dir).checkpoint(1).path / "policy.safetensors")
    assert all(torch.equal(saved[name], param.detach()) for name, param in trainer.named_trainable)
    assert not all(
        torch.equal(saved[name], value)
        for name, value in load_file(
            RunFolder(trainer.output_dir).checkpoint(2).path / "policy.safetensors"
        ).items()
    )
    trainer.guardrail.best_step = trainer.step
    assert roll_back_to_best(trainer) == "kept: this evaluation is the best so far"


def test_bad_second_judges_fail_before_any_model_loads(tiny_models, tmp_path):
    with pytest.raises(ConfigError, match="is not a model folder"):
        check_second_judge(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="is not a model folder"):
        check_second_judge(str(tiny_models["flux"]))  # a diffusers pipeline: no config.json of its own
    with pytest.raises(ConfigError, match="holds a 'clip' model: give a Qwen2.5-VL folder"):
        check_second_judge(str(tiny_models["clip"]))
    with pytest.raises(ConfigError, match="clip: compares the samples with the reference images"):
        check_second_judge(f"clip:{tiny_models['clip']}")
    check_second_judge(str(tiny_models["judge"]))
    check_second_judge(f"clip:{tiny_models['clip']}", references=("ref.png",))
    config = tiny_config(
        tiny_models["flux"], tmp_path / "run", guardrail_second_judge=str(tmp_path / "missing")
    )
    assert config.held_out_metric == METRIC
    with pytest.raises(ConfigError, match="guardrail_second_judge"):
        GrpoTrainer(config).train()


def test_second_judge_scores_with_clip_and_with_a_zero_shot_judge(tiny_models, tmp_path):
    reference = tmp_path / "ref.png"
    _smooth().save(reference)
    grids = [_smooth(64), Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8))]
    metadata = [{"kind": "set", "layout": "2x2", "theme": "a fox"}] * 2
    clip = SecondJudge(f"clip:{tiny_models['clip']}", (str(reference),), "theme", "cpu")
    judge = SecondJudge(str(tiny_models["judge"]), (), "theme", "cpu")
    with_refs = SecondJudge(str(tiny_models["judge"]), (str(reference),), "theme", "cpu")
    for scorer in (clip, judge, with_refs):
        value = scorer.score(grids, ["a fox"] * 2, metadata)[METRIC]
        assert np.isfinite(value) and -1.0 <= value <= 1.0
    # CLIP similarity: a panel of the reference itself is more similar than a black one
    same = clip.score([_smooth(32)], ["x"], [{"kind": "set", "layout": "1x1"}])[METRIC]
    black = clip.score([grids[1]], ["x"], [{"kind": "set", "layout": "1x1"}])[METRIC]
    assert same > black and same == pytest.approx(1.0, abs=0.05)
