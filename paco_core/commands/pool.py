"""`paco pool`: the most consistent set assembled from K candidate sets of the same panels.

Example:
    paco generate --model models/FLUX.1-dev --theme "a red fox" --panel ... --num-sets 4 --out sets
    paco pool --judge models/PaCo-Reward-7B --theme "a red fox" --layout 2x2 sets/set_*/grid.png --out pool
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paco_core.commands.model_arguments import add_judge_arguments, judge_from_args
from paco_core.commands.score import progress_printer, read_image
from paco_core.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pool",
        help="assemble the most consistent set from K candidate sets (one candidate per panel)",
        description="Every pair of panels across the candidates is scored once; then one candidate is chosen "
        "per panel to maximise the set score (exact search, or beam search for large pools). Writes grid.png, "
        "panel_1.png ..., heatmap.png, best_whole_heatmap.png, choice.png and result.json into --out, and "
        "prints the report (the assembled set's score against the best whole set).",
    )
    add_judge_arguments(parser)
    parser.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMG",
        help="candidate grids (with --layout), or every candidate's panels in order (with --panels-per-set)",
    )
    parser.add_argument("--theme", default=None, help="the sets' theme (default: the theme-less prompt)")
    shape = parser.add_mutually_exclusive_group(required=True)
    shape.add_argument("--layout", metavar="RxC", help="each IMG is one candidate grid of this layout")
    shape.add_argument(
        "--panels-per-set", type=int, metavar="N", help="each N consecutive IMGs are one candidate set"
    )
    parser.add_argument("--both-orders", action="store_true", help="ask each pair in both orders")
    parser.add_argument(
        "--beam-width", type=int, default=64, help="partial sets kept per panel for large pools (default 64)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: print only)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the report")
    parser.set_defaults(func=run_pool)


def candidate_sets(paths: list[Path], layout: str | None, panels_per_set: int | None) -> list[list]:
    """The candidates: one grid per path split by ``layout``, or ``panels_per_set`` paths per set."""
    from paco_core.images import split_grid

    if layout is not None:
        return [split_grid(read_image(path), layout) for path in paths]
    if panels_per_set < 2:
        raise InputError(f"--panels-per-set should be at least 2, got {panels_per_set}.")
    if len(paths) % panels_per_set:
        raise InputError(
            f"--panels-per-set {panels_per_set} does not divide the {len(paths)} images given; give "
            f"{panels_per_set} panels per candidate set."
        )
    images = [read_image(path) for path in paths]
    return [images[start : start + panels_per_set] for start in range(0, len(images), panels_per_set)]


def run_pool(args: argparse.Namespace) -> int:
    from paco_core.consistency.pool import assemble_from_pool, check_pool

    candidates = check_pool(candidate_sets(args.images, args.layout, args.panels_per_set))
    if args.out is not None:
        from paco_core.io import check_output_folder

        check_output_folder(args.out)
    judge = judge_from_args(args)
    result = assemble_from_pool(
        judge,
        candidates,
        args.theme,
        both_orders=args.both_orders,
        beam_width=args.beam_width,
        hooks=progress_printer("pairs"),
    )
    if args.out is not None:
        write_pool(candidates, result, args.out, args.layout)
    print(json.dumps(result.to_json()) if args.json else result.report())
    return 0


def write_pool(candidates, result, folder: Path, layout: str | None) -> None:
    """grid.png, panel_k.png, heatmap.png, best_whole_heatmap.png, choice.png and result.json."""
    from paco_core.commands.generate import save_png
    from paco_core.consistency.pictures import render_pool_choice
    from paco_core.images import compose_grid
    from paco_core.io import atomic_write_json
    from paco_core.reward.report import render_pair_matrix

    save_png(compose_grid(result.panels, layout or f"1x{len(result.panels)}"), folder / "grid.png")
    for number, panel in enumerate(result.panels, start=1):
        save_png(panel, folder / f"panel_{number}.png")
    save_png(render_pair_matrix(result.set_score), folder / "heatmap.png")
    save_png(
        render_pair_matrix(result.whole_set_score(result.best_whole_index)), folder / "best_whole_heatmap.png"
    )
    save_png(render_pool_choice(candidates, result), folder / "choice.png")
    atomic_write_json(folder / "result.json", result.to_json())
