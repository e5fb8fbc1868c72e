"""`paco reference-set` (a set of your character) and `paco repair` (repair the odd panel).

Examples:
    paco reference-set --model models/FLUX.1-dev --lora paco.safetensors --judge models/PaCo-Reward-7B \\
        --reference mia.png --theme "Mia, a red-haired courier." --panel "she runs" --panel "she eats" \\
        --panel "she sleeps" --layout 2x2 --out mia_set
    paco repair --model models/FLUX.1-dev --lora paco.safetensors --judge models/PaCo-Reward-7B \\
        --layout 2x2 --theme "a fox in four seasons." --target 0.85 --tries 3 --rounds 4 grid.png --out fixed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paco_core.commands.generate import (
    cli_hooks,
    load_with_loras,
    parse_panel_size,
    save_png,
)
from paco_core.commands.model_arguments import add_model_arguments
from paco_core.errors import InputError


def register(subparsers) -> None:
    register_reference_set(subparsers)
    register_repair(subparsers)


def add_judge_source(parser: argparse.ArgumentParser) -> None:
    """--judge (a folder, hub id or server URL) and --judge-lora: --lora is the pipeline's."""
    parser.add_argument(
        "--judge", required=True, help="judge folder, hub id or OpenAI-compatible server URL (http://...)"
    )
    parser.add_argument("--judge-lora", default=None, metavar="DIR", help="peft adapter for a base judge")


def open_judge_from_args(args: argparse.Namespace):
    from paco_core.reward import open_judge

    return open_judge(args.judge, lora=args.judge_lora, device=args.device, dtype=args.dtype)


def add_sampling_arguments(parser: argparse.ArgumentParser, steps_help: str) -> None:
    parser.add_argument("--steps", type=int, default=28, help=steps_help)
    parser.add_argument(
        "--guidance", type=float, default=None, help="guidance (default: FLUX 3.5, Kontext 2.5, Qwen 4.0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")


def register_reference_set(subparsers) -> None:
    parser = subparsers.add_parser(
        "reference-set",
        help="a consistent set anchored on reference image(s): a set of your character",
        description="With FLUX.1-dev the references take the first grid cells and the other panels are drawn "
        "around them (masked denoising, references held at every step); with Kontext / Qwen-Image-Edit each "
        "panel is an edit of the reference. The judge scores every panel against the references and each "
        "other. Writes grid.png, cell_1.png ..., heatmap.png, report.txt and result.json into --out.",
    )
    add_model_arguments(parser)
    add_judge_source(parser)
    parser.add_argument(
        "--reference", action="append", default=[], type=Path, help="a reference image (any size); repeat"
    )
    parser.add_argument("--theme", required=True, help="what the whole set shows")
    parser.add_argument("--description", default="", help="FLUX: what every panel shares")
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        help="one prompt per new panel (edit: the instruction); repeat",
    )
    parser.add_argument("--layout", default="2x2", help="rows x columns of references + panels (default 2x2)")
    parser.add_argument(
        "--reference-cell",
        action="append",
        type=int,
        default=[],
        help="the cell (from 1, row-major) of each reference, in order (default: the first cells)",
    )
    parser.add_argument(
        "--reference-fit", choices=("pad", "crop"), default="pad", help="pad or crop (default pad)"
    )
    parser.add_argument(
        "--panel-size", default="512", help="panel size: N or WxH, multiples of 16 (default 512)"
    )
    add_sampling_arguments(parser, "denoising steps (default 28)")
    parser.add_argument(
        "--identity-threshold",
        type=float,
        default=0.5,
        help="score against the references that keeps identity",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run_reference_set)


def register_repair(subparsers) -> None:
    parser = subparsers.add_parser(
        "repair",
        help="repair the odd panel of a set: redraw the weakest panel until the set is consistent",
        description="Finds the weakest panel (lowest per-panel judge mean), redraws only it (FLUX: inside the grid "
        "with the other cells locked; edit models: an edit of the best panels), --tries per round, keeps a try "
        "only when the set score rises, stops at --target or after --rounds. Ctrl-C keeps the best set so far. "
        "Writes grid.png, panel_1.png ..., heatmap_before.png, heatmap_after.png, report.txt, repair.json.",
    )
    add_model_arguments(parser)
    add_judge_source(parser)
    parser.add_argument("images", nargs="+", type=Path, metavar="IMG", help="one grid image, or every panel")
    parser.add_argument("--layout", required=True, help="rows x columns of the set, e.g. 2x2")
    parser.add_argument("--theme", required=True, help="the set's theme (the judge's and the grid prompt's)")
    parser.add_argument("--description", default="", help="FLUX: what every panel shares")
    parser.add_argument(
        "--panel-prompt", action="append", default=[], help="what each panel shows, one per panel; repeat"
    )
    parser.add_argument("--target", type=float, default=0.9, help="stop at this set score (default 0.9)")
    parser.add_argument("--tries", type=int, default=2, help="tries per round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="the most rounds (default 3)")
    parser.add_argument("--strength", type=float, default=1.0, help="FLUX: how much of the panel is redrawn")
    parser.add_argument(
        "--lock", action="append", type=int, default=[], help="a panel (from 1) never redrawn; repeat"
    )
    add_sampling_arguments(parser, "denoising steps per try (default 28)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run_repair)


def run_reference_set(args: argparse.Namespace) -> int:
    from paco_core.consistency.reference_sets import ReferenceSetRequest, generate_reference_set
    from paco_core.consistency.report import format_reference_report, reference_json
    from paco_core.images import open_image_file
    from paco_core.io import atomic_write_json, atomic_write_text, check_output_folder
    from paco_core.reward.report import render_pair_matrix

    width, height = parse_panel_size(args.panel_size)
    request = ReferenceSetRequest(
        theme=args.theme,
        panels=tuple(args.panel),
        layout=args.layout,
        description=args.description,
        reference_cells=tuple(cell - 1 for cell in args.reference_cell),
        reference_fit=args.reference_fit,
        panel_width=width,
        panel_height=height,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        identity_threshold=args.identity_threshold,
    )
    if not args.reference:
        raise InputError("--reference: give at least one reference image (repeat --reference for several).")
    references = [open_image_file(path, what="--reference") for path in args.reference]
    check_output_folder(args.out)
    view = load_with_loras(args)
    judge = open_judge_from_args(args)
    result = generate_reference_set(view, judge, references, request, hooks=cli_hooks())
    save_png(result.grid, args.out / "grid.png")
    for number, image in enumerate(result.cells, start=1):
        save_png(image, args.out / f"cell_{number}.png")
    save_png(render_pair_matrix(result.set_score), args.out / "heatmap.png")
    report = format_reference_report(result)
    atomic_write_text(args.out / "report.txt", report + "\n")
    atomic_write_json(args.out / "result.json", {**reference_json(result), "settings": result.settings})
    print(report)
    return 0


def run_repair(args: argparse.Namespace) -> int:
    from paco_core.commands.score import set_images
    from paco_core.consistency.repair import RepairOptions, repair_set
    from paco_core.consistency.report import format_repair_report, repair_log_json
    from paco_core.io import atomic_write_json, atomic_write_text, check_output_folder
    from paco_core.reward.report import render_pair_matrix

    options = RepairOptions(
        target_score=args.target,
        tries_per_round=args.tries,
        max_rounds=args.rounds,
        steps=args.steps,
        guidance=args.guidance,
        strength=args.strength,
        seed=args.seed,
        locked=tuple(n - 1 for n in args.lock),
    )
    panels = set_images(args.images, args.layout if len(args.images) == 1 else None)
    check_output_folder(args.out)
    view = load_with_loras(args)
    judge = open_judge_from_args(args)
    result = repair_set(
        view,
        judge,
        panels,
        args.theme,
        layout=args.layout,
        panel_prompts=args.panel_prompt,
        description=args.description,
        options=options,
        hooks=cli_hooks(),
    )
    save_png(result.grid, args.out / "grid.png")
    for number, image in enumerate(result.panels, start=1):
        save_png(image, args.out / f"panel_{number}.png")
    save_png(render_pair_matrix(result.score_before), args.out / "heatmap_before.png")
    save_png(render_pair_matrix(result.score_after), args.out / "heatmap_after.png")
    report = format_repair_report(result)
    atomic_write_text(args.out / "report.txt", report + "\n")
    atomic_write_json(args.out / "repair.json", repair_log_json(result))
    print(report)
    if result.cancelled:
        print(f"paco repair: interrupted; the best set so far is in {args.out}", file=sys.stderr)
        return 130
    return 0
