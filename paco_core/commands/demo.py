"""`paco demo --out DIR`: generate a consistent set, judge it, print a summary.

With no model arguments it runs on the tiny random-weight models, built once into a cache
folder (seconds on a CPU; the images are noise, the point is the whole path working).
With --model / --lora / --judge it runs the same steps on real weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from paco_core.commands.generate import cli_hooks, write_set
from paco_core.commands.model_arguments import add_precision_arguments
from paco_core.families import FLUX

DEMO_THEME = "a red fox explorer, children's book watercolor"
DEMO_DESCRIPTION = "The same fox with a green scarf in every panel, soft watercolor on paper."
DEMO_PANELS = (
    "the fox packs a map into a small backpack",
    "the fox crosses a wooden bridge over a stream",
    "the fox climbs a snowy hill at sunset",
    "the fox sleeps in a tent under the stars",
)
TINY_SETTINGS = {"panel_size": 32, "steps": 2}
REAL_SETTINGS = {"panel_size": 512, "steps": 28}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate a consistent 2x2 set and judge it (tiny models when no model is given)",
        description="Generate a consistent 2x2 set and score it with the PaCo-Reward judge. Without --model "
        "the tiny random-weight models are built once into --cache and used (runs in seconds on a CPU).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--model", help="FLUX.1-dev diffusers folder (default: the tiny FLUX)")
    parser.add_argument(
        "--lora", action="append", default=[], metavar="FILE[:STRENGTH]", help="PaCo LoRA (repeat to stack)"
    )
    parser.add_argument("--judge", help="PaCo-Reward judge folder (default: the tiny judge)")
    parser.add_argument("--cache", type=Path, help="where the tiny models are kept (default ~/.cache/paco)")
    parser.add_argument("--panel-size", type=int, help="panel size (default 32 tiny, 512 real)")
    parser.add_argument("--steps", type=int, help="denoising steps (default 2 tiny, 28 real)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    add_precision_arguments(parser)
    parser.set_defaults(func=run)


def model_folders(args: argparse.Namespace) -> tuple[str, str | None, bool]:
    """(generator folder, judge folder or None, whether the tiny models are used)."""
    if args.model:
        return args.model, args.judge, False
    from paco_core.testing import build_tiny_models, default_cache_dir

    started = time.perf_counter()
    folders = build_tiny_models(args.cache or default_cache_dir(), [FLUX.kind, "judge"])
    print(f"tiny models ready in {time.perf_counter() - started:.1f} s: {Path(folders[FLUX.kind]).parent}")
    return str(folders[FLUX.kind]), args.judge or str(folders["judge"]), True


def run(args: argparse.Namespace) -> int:
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.io import atomic_write_json, check_output_folder
    from paco_core.models.lora import LoraSpec, apply_loras
    from paco_core.models.pipelines import load_pipeline
    from paco_core.prompts import judge_theme

    started = time.perf_counter()
    check_optional_counts(args)
    check_output_folder(args.out)
    specs = [LoraSpec.parse(text) for text in args.lora]
    model, judge_folder, tiny = model_folders(args)
    defaults = TINY_SETTINGS if tiny else REAL_SETTINGS
    panel_size = args.panel_size or defaults["panel_size"]
    request = SetRequest(
        theme=DEMO_THEME,
        description=DEMO_DESCRIPTION,
        panels=DEMO_PANELS,
        layout="2x2",
        panel_width=panel_size,
        panel_height=panel_size,
        steps=args.steps or defaults["steps"],
        seed=args.seed,
    )
    loaded = load_pipeline(model, dtype=args.dtype, device=args.device)
    view = apply_loras(loaded, specs) if specs else loaded
    generation_started = time.perf_counter()
    [result] = generate_sets(view, request, hooks=cli_hooks())
    generation_seconds = time.perf_counter() - generation_started
    write_set(result, args.out)
    summary = {
        "model": model,
        "loras": [{"path": lora.path, "strength": lora.strength} for lora in view.loras],
        "tiny_models": tiny,
        "prompt": result.prompt,
        "seed": result.seed,
        "generation_seconds": round(generation_seconds, 3),
        "output": str(args.out),
    }
    summary["judge"] = score_with_judge(judge_folder, result.panels, judge_theme(result.prompt), args)
    summary["total_seconds"] = round(time.perf_counter() - started, 3)
    atomic_write_json(args.out / "summary.json", summary)
    print_summary(summary)
    return 0


def check_optional_counts(args: argparse.Namespace) -> None:
    """--steps and --panel-size, when given, must be real values: 0 is an error, not "the default"."""
    from paco_core.errors import InputError

    if args.steps is not None and args.steps < 1:
        raise InputError(
            f"--steps should be a whole number >= 1, got {args.steps}; leave it out for the default."
        )
    if args.panel_size is not None and args.panel_size < 16:
        raise InputError(
            f"--panel-size should be a whole number of pixels >= 16, got {args.panel_size}; leave it out for "
            "the default."
        )


def score_with_judge(judge_folder: str | None, panels, theme: str, args: argparse.Namespace) -> dict:
    """The set score and its pair scores, or why the judge step was skipped."""
    if judge_folder is None:
        return {"skipped": "no --judge given"}
    from paco_core.reward import open_judge
    from paco_core.reward.scoring import score_set

    started = time.perf_counter()
    judge = open_judge(judge_folder, dtype=args.dtype, device=_judge_device(args))
    score = score_set(judge, panels, theme)
    return {
        "folder": judge_folder,
        "set_score": float(score.score),
        "per_image": [float(value) for value in score.per_image],
        "seconds": round(time.perf_counter() - started, 3),
    }


def _judge_device(args: argparse.Namespace) -> str | None:
    return None if args.device == "auto" else args.device


def print_summary(summary: dict) -> None:
    kind = (
        "tiny random-weight models (noise images; real weights: --model/--lora/--judge)"
        if summary["tiny_models"]
        else summary["model"]
    )
    lines = [
        "",
        "PaCo demo",
        f"  models     {kind}",
        f"  set        2x2 grid, seed {summary['seed']}, generated in {summary['generation_seconds']:.2f} s",
        f"  written    {summary['output']}/grid.png, panel_1..4.png, settings.json, summary.json",
    ]
    judge = summary["judge"]
    if "skipped" in judge:
        lines.append(f"  judge      skipped: {judge['skipped']}")
    else:
        per_image = ", ".join(f"{value:.3f}" for value in judge["per_image"])
        lines.append(f"  judge      set consistency {judge['set_score']:.3f} (per panel {per_image})")
    lines.append(f"  total      {summary['total_seconds']:.1f} s")
    print("\n".join(lines), file=sys.stdout)
