"""Training for a character, measured on the tiny models (CPU or GPU), three parts side by side:

1. ``reuse``: the reference reward's judge work per iteration, references pinned on the judge
   (encoded once per job) vs not (encoded in every call): judge calls, pairs asked, images
   through the vision encoder, seconds.
2. ``drop``: groups that teach nothing. The reward is the brightness for 2 of 5 prompts and a
   constant for the 3 others; the same run with and without ``data.drop_zero_spread_prompts``:
   seconds, groups that taught something, seconds per teaching group.
3. ``reference``: a short run on the reference reward alone (prompt set with a held-out scene,
   one reference image): the train reward per step, the held-out reference reward and the
   held-out panels' CLIP image similarity and mean colour distance to the reference, before
   and after.

    python -m bench.character_training                # all three
    python -m bench.character_training --part drop    # one

The tiny judge and CLIP have random weights: the figures show that the machinery works and
what it costs, not what a real judge makes of a real character.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from paco_core.families import FLUX

TEACHING_WORDS = ("fox", "cat")
SETS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rl" / "sets.jsonl"


def brightness_on_some_prompts(images, prompts, metadata):
    """The brightness for prompts with a fox or a cat, 0.5 for the others (their groups teach nothing)."""
    return [
        float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 255.0)
        if any(word in prompt for word in TEACHING_WORDS)
        else 0.5
        for image, prompt in zip(images, prompts, strict=True)
    ]


def _tiny(cache: Path) -> dict:
    from paco_core.testing import build_tiny_models

    return build_tiny_models(cache, [FLUX.kind, "judge", "clip"])


def _reference_image() -> Image.Image:
    """A warm orange disc on teal: far from what the untrained tiny FLUX draws."""
    from PIL import ImageDraw

    image = Image.new("RGB", (96, 128), (20, 120, 130))
    ImageDraw.Draw(image).ellipse((16, 24, 80, 104), fill=(240, 140, 40))
    return image


# --------------------------------------------------------------------------- 1. reuse


def bench_reuse(models: dict, iterations: int = 3, micro_batches: int = 4, batch: int = 2) -> dict:
    from paco_core.reward import open_judge
    from paco_core.rl.config import RewardConfig
    from paco_core.rl.reference_reward import ReferenceReward

    references = [_reference_image(), _reference_image().rotate(90, expand=True)]
    rng = np.random.default_rng(0)
    grids = [
        [Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)) for _ in range(batch)]
        for _ in range(iterations * micro_batches)
    ]
    metadata = [{"kind": "set", "layout": "1x2", "theme": "a girl"}] * batch
    results = {}
    for pinned in (True, False):
        judge = open_judge(models["judge"], cache_size=0)
        encoded, calls, pairs = [], [0], [0]
        original_features = judge.model.get_image_features
        original_score = judge.score_pairs

        def features(pixel_values, grids_thw, _original=original_features, _encoded=encoded, **kwargs):
            _encoded.append(int(grids_thw.shape[0]))
            return _original(pixel_values, grids_thw, **kwargs)

        def score(asked, hooks=None, _original=original_score, _calls=calls, _pairs=pairs):
            _calls[0] += 1
            _pairs[0] += len(asked)
            return _original(asked) if hooks is None else _original(asked, hooks)

        judge.model.get_image_features = features
        judge.score_pairs = score

        class Models:
            config = RewardConfig(
                rewards=[{"name": "reference"}], references=("in-memory.png",), judge_theme="theme"
            )

        Models.judge = judge
        reward = ReferenceReward(Models(), references)
        if not pinned:
            reward._pinned_on = judge  # the judge never hears of the references: encoded in every call
        started = time.perf_counter()
        for number in range(iterations * micro_batches):
            reward(grids[number], ["a girl"] * batch, metadata)
        seconds = time.perf_counter() - started
        results["pinned" if pinned else "not pinned"] = {
            "judge_calls_per_iteration": calls[0] / iterations, "pairs_per_iteration": pairs[0] / iterations,
            "images_encoded_per_iteration": sum(encoded) / iterations, "seconds_per_iteration": seconds / iterations,
        }  # fmt: skip
    pinned, plain = results["pinned"], results["not pinned"]
    results["ratio_images_encoded"] = (
        plain["images_encoded_per_iteration"] / pinned["images_encoded_per_iteration"]
    )
    results["ratio_seconds"] = plain["seconds_per_iteration"] / pinned["seconds_per_iteration"]
    return results


# --------------------------------------------------------------------------- 2. drop


def _train(config: dict):
    from paco_core.config import config_from_dict
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.trainer import GrpoTrainer
    from paco_core.run_folder import RunFolder

    started = time.perf_counter()
    GrpoTrainer(config_from_dict(TrainConfig, config)).train()
    return time.perf_counter() - started, RunFolder(config["output_dir"])


def _tiny_run(models: dict, output_dir: Path, **sections) -> dict:
    config = {
        "model": {"kind": FLUX.kind, "path": str(models[FLUX.kind]), "device": "cpu"},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 2, "noise_steps": [0, 1], "train_resolution": 32, "eval_resolution": 32,
                     "group_size": 4, "batch_size": 4, "prompts_per_iteration": 1, "max_sequence_length": 16,
                     "guidance_scale": 2.0, "noise_level": 1.0},
        "optim": {"lr": 5e-2, "clip_range": 0.2}, "ema": {"use_ema": False},
        "checkpoint_every": 100, "eval_every": 0, "output_dir": str(output_dir),
    }  # fmt: skip
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


def bench_drop(models: dict, folder: Path, iterations: int = 12) -> dict:
    results = {}
    for drop in (False, True):
        config = _tiny_run(
            models,
            folder / f"drop-{drop}",
            num_iterations=iterations,
            data={"train_file": str(SETS), "eval_fraction": 0.0, "drop_zero_spread_prompts": drop},
            rewards={
                "rewards": [{"name": "bench.character_training:brightness_on_some_prompts"}],
                "aggregation": "weighted_sum",
            },
        )
        seconds, run = _train(config)
        wasted = int(sum(v for _, v in run.metric_series("groups/zero_spread")))
        rollout = sum(v for _, v in run.metric_series("time/step_s"))
        results["dropped" if drop else "kept"] = {
            "seconds": seconds, "step_seconds": rollout, "groups": iterations, "teach_nothing_groups": wasted,
            "teaching_groups": iterations - wasted, "step_seconds_per_teaching_group": rollout / (iterations - wasted),
        }  # fmt: skip
    kept, dropped = results["kept"], results["dropped"]
    results["ratio_step_seconds_per_teaching_group"] = (
        kept["step_seconds_per_teaching_group"] / dropped["step_seconds_per_teaching_group"]
    )
    results["step_seconds_saved_per_teaching_group"] = (
        kept["step_seconds_per_teaching_group"] - dropped["step_seconds_per_teaching_group"]
    )
    return results


# --------------------------------------------------------------------------- 3. reference


def _colour_distance(images: list, reference: Image.Image) -> float:
    target = np.asarray(reference.resize((16, 16)), dtype=np.float64).mean(axis=(0, 1))
    return float(
        np.mean(
            [
                np.linalg.norm(np.asarray(i.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) - target)
                for i in images
            ]
        )
    )


def bench_reference(models: dict, folder: Path, iterations: int = 20, pictures: Path | None = None) -> dict:
    from paco_core.jobs.prompt_sets import PromptSetSpec, build_prompt_set, write_prompt_set
    from paco_core.rl.evaluation import evaluate_policy  # noqa: F401 (the eval samples are read back below)

    reference_path = folder / "reference.png"
    _reference_image().save(reference_path)
    spec = PromptSetSpec(
        "a girl with an orange scarf",
        scenes=("a park", "a kitchen", "a beach"),
        layout="1x2",
        rows_per_scene=2,
        held_out_scenes=1,
        seed=0,
    )
    files = write_prompt_set(build_prompt_set(spec), folder / "prompts")
    config = _tiny_run(
        models,
        folder / "reference-run",
        num_iterations=iterations,
        eval_every=max(1, iterations // 2),
        eval_group_size=2,
        optim={"lr": 1e-1, "clip_range": 0.2},
        data={"train_file": str(files.train_file), "eval_file": str(files.eval_file), "num_eval_prompts": 2},
        rewards={
            "rewards": [{"name": "reference"}],
            "references": [str(reference_path)],
            "judge_path": str(models["judge"]),
            "aggregation": "weighted_sum",
        },
        guardrail_second_judge=f"clip:{models['clip']}",
        best_metric="eval/rewards/reference/mean",
    )
    _, run = _train(config)
    train = [v for _, v in run.metric_series("rewards/reference/mean")]
    held = dict(run.metric_series("eval/rewards/reference/mean"))
    clip = dict(run.metric_series("eval/second_judge/mean"))
    samples = {step: Image.open(path).convert("RGB") for step, path in run.sample_paths()}
    first, last = min(samples), max(samples)
    if pictures is not None:
        _save_pictures(pictures, run, samples[first], samples[last], first, last)
    return {
        "train_reward_first_half_mean": float(np.mean(train[: len(train) // 2])),
        "train_reward_second_half_mean": float(np.mean(train[len(train) // 2 :])),
        "train_reward_per_step": [round(v, 4) for v in train],
        "held_out_reference_reward": {str(k): round(v, 4) for k, v in held.items()},
        "held_out_clip_similarity": {str(k): round(v, 4) for k, v in clip.items()},
        "held_out_colour_distance": {str(first): _colour_distance([samples[first]], _reference_image()),
                                     str(last): _colour_distance([samples[last]], _reference_image())},
    }  # fmt: skip


def _save_pictures(folder: Path, run, before: Image.Image, after: Image.Image, first: int, last: int) -> None:
    """The docs' pictures: the reference, the held-out samples before and after, the reward curves."""
    from paco_core.jobs.curves import draw_reward_curves, reward_series

    folder.mkdir(parents=True, exist_ok=True)
    _reference_image().resize((192, 256), Image.Resampling.NEAREST).save(folder / "character-reference.png")
    pair = Image.new("RGB", (before.width * 2 + 8, before.height), (255, 255, 255))
    pair.paste(before, (0, 0))
    pair.paste(after, (before.width + 8, 0))
    scale = max(1, 256 // pair.height)
    pair.resize((pair.width * scale, pair.height * scale), Image.Resampling.NEAREST).save(
        folder / "character-held-out-before-after.png"
    )
    draw_reward_curves(reward_series(run.path), title=f"tiny models: steps {first} to {last}").save(
        folder / "character-reward-curves.png"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("reuse", "drop", "reference", "all"), default="all")
    parser.add_argument("--cache", type=Path, help="where the tiny models are kept (default ~/.cache/paco)")
    parser.add_argument("--iterations", type=int, default=20, help="steps of the reference run (default 20)")
    parser.add_argument(
        "--pictures", type=Path, help="also save the docs' pictures of the reference run here"
    )
    args = parser.parse_args(argv)
    from paco_core.testing import default_cache_dir

    models = _tiny(args.cache or default_cache_dir())
    report = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if args.part in ("reuse", "all"):
            report["reuse"] = bench_reuse(models)
        if args.part in ("drop", "all"):
            report["drop"] = bench_drop(models, folder)
        if args.part in ("reference", "all"):
            report["reference"] = bench_reference(models, folder, args.iterations, args.pictures)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
