"""Write the pictures of docs/consistency-pool-and-chains.md from runs on the tiny models.

The tiny models have random weights, so the images are noise and the scores sit near 0.3;
the pictures show what the tools output (which panel came from which candidate, the pair
heatmaps, each chain step's scores against the origin), not a real model's quality.

Usage (from the repository root):
    python -m tools.consistency_pool_pictures   # writes docs/images/consistency-pool-* and -chain-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

from paco_core.families import FLUX, FLUX_KONTEXT

IMAGES_DIR = Path(__file__).resolve().parents[1] / "docs" / "images"
INSTRUCTIONS = ["make it winter", "make it night", "add a red scarf"]


def side_by_side(images, gap: int = 16):
    from PIL import Image

    width = sum(image.width for image in images) + gap * (len(images) - 1)
    sheet = Image.new("RGB", (width, max(image.height for image in images)), (255, 255, 255))
    left = 0
    for image in images:
        sheet.paste(image, (left, 0))
        left += image.width + gap
    return sheet


def small_png(image, path: Path) -> None:
    """Saved with a 256-colour palette: the tiny models' noise images compress badly otherwise."""
    from PIL import Image

    image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def stacked(rows, labels, label_width: int = 190, gap: int = 12):
    """Rows of pictures one under the other, each with its label on the left."""
    from PIL import Image, ImageDraw, ImageFont

    width = label_width + max(row.width for row in rows)
    sheet = Image.new(
        "RGB", (width, sum(row.height for row in rows) + gap * (len(rows) - 1)), (255, 255, 255)
    )
    draw, font, top = ImageDraw.Draw(sheet), ImageFont.load_default(size=14), 0
    for row, label in zip(rows, labels, strict=True):
        draw.text((6, top + row.height // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        sheet.paste(row, (label_width, top))
        top += row.height + gap
    return sheet


def pool_pictures(folder: Path, models: dict) -> list[Path]:
    from paco_core.consistency.pictures import render_pool_choice
    from paco_core.consistency.pool import assemble_from_pool
    from paco_core.generate import SetRequest, generate_sets
    from paco_core.models.pipelines import load_pipeline
    from paco_core.reward import open_judge
    from paco_core.reward.report import render_pair_matrix

    flux, judge = load_pipeline(models[FLUX.kind]), open_judge(models["judge"])
    request = SetRequest(
        theme="a red fox",
        panels=("winter", "autumn", "meadow", "night"),
        layout="2x2",
        panel_width=64,
        panel_height=64,
        steps=4,
        seed=40,
    )
    candidates = [item.panels for item in generate_sets(flux, request, num_sets=4)]
    result = assemble_from_pool(judge, candidates, request.theme)
    heatmaps = side_by_side(
        [
            render_pair_matrix(result.set_score),
            render_pair_matrix(result.whole_set_score(result.best_whole_index)),
        ]
    )
    written = [folder / "consistency-pool-choice.png", folder / "consistency-pool-heatmaps.png"]
    small_png(render_pool_choice(candidates, result), written[0])
    heatmaps.save(written[1])
    print(result.report())
    return written


def chain_pictures(folder: Path, models: dict) -> list[Path]:
    from bench.edit_chain_guard import drawn_origin
    from paco_core.consistency.drift import GuardOptions, guarded_edit_chain
    from paco_core.consistency.pictures import render_chain_scores
    from paco_core.generate import EditOptions
    from paco_core.models.pipelines import load_pipeline
    from paco_core.reward import open_judge

    kontext, judge = load_pipeline(models[FLUX_KONTEXT.kind]), open_judge(models["judge"])
    origin = drawn_origin(3, 96)
    options = EditOptions(steps=4, seed=300)
    plain = guarded_edit_chain(kontext, judge, origin, INSTRUCTIONS, options, GuardOptions(threshold=0.0))
    threshold = sorted(step.chosen.guard_score for step in plain.steps)[1]  # the middle step's score
    guarded = guarded_edit_chain(
        kontext, judge, origin, INSTRUCTIONS, options, GuardOptions(threshold=threshold, tries=3)
    )
    strips = [side_by_side([result.origin, *result.images], gap=8) for result in (plain, guarded)]
    written = [
        folder / "consistency-chain-images.png",
        folder / "consistency-chain-plain-scores.png",
        folder / "consistency-chain-guarded-scores.png",
    ]
    small_png(stacked(strips, ["plain chain", f"guarded (threshold {threshold:.3f})"]), written[0])
    render_chain_scores(plain).save(written[1])
    render_chain_scores(guarded).save(written[2])
    print(plain.report())
    print(guarded.report())
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=IMAGES_DIR, help="folder for the pictures (default docs/images)"
    )
    args = parser.parse_args(argv)

    from paco_core.testing import ensure_tiny_models

    models = ensure_tiny_models()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in [*pool_pictures(args.out, models), *chain_pictures(args.out, models)]:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
